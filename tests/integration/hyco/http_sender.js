// HTTP sender (spec §10 step 4) with one request per run: METHOD PATH
// [BODYSIZE|-] [query-token]. Prints "RESULT status statusMessage via length
// body-prefix" as JSON.
const http = require(process.env.TLS ? 'https' : 'http'), hs = require('hyco-https');
const port = +(process.env.PORT || 9300), host = process.env.HOST || '127.0.0.1';
const hc = process.env.HC || 'myhc';
const tok = hs.createRelayToken('http://' + host + ':' + port + '/' + hc, process.env.KEYNAME || 'k', process.env.KEY || 'secret');
const [method, path, bodyArg, mode] = process.argv.slice(2);
let hdr = { ServiceBusAuthorization: tok };
let p = path;
if (mode === 'query') { hdr = {}; p = path + (path.includes('?') ? '&' : '?') + 'sb-hc-token=' + encodeURIComponent(tok); }
if (mode === 'none') hdr = {};
const body = bodyArg && bodyArg !== '-' ? Buffer.alloc(+bodyArg, 0x42) : null;
const r = http.request({ host, port, method, path: p, agent: false,
                         headers: Object.assign({ 'X-Custom': 'hello' }, hdr) }, rs => {
  const c = []; rs.on('data', d => c.push(d));
  rs.on('end', () => { const b = Buffer.concat(c);
    console.log('RESULT ' + JSON.stringify({ status: rs.statusCode, message: rs.statusMessage, via: rs.headers.via || null,
      length: b.length, body: b.slice(0, 200).toString() })); process.exit(0); });
});
r.on('error', e => { console.log('RESULT ' + JSON.stringify({ error: e.message })); process.exit(0); });
if (body) r.write(body); r.end();
