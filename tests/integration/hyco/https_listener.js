// hyco-https listener used by test_relay.py (spec §10 step 3), unchanged
// (but for the /k60 route and the rvclose line of test_relay_limits.py) except that the relay URL, hybrid connection and key come from the
// environment. Prints LISTENER lines the test waits on.
const https = require('hyco-https'), moment = require('moment');
const hc = process.env.HC || 'myhc';
const uri = (process.env.RELAY || 'ws://127.0.0.1:9300') + '/$hc/' + hc + '?sb-hc-action=listen';
const opts = { server: uri, token: () => https.createRelayToken(uri, process.env.KEYNAME || 'k', process.env.KEY || 'secret') };
if (process.env.KEEPALIVE) opts.keepAliveTimeout = moment.duration(+process.env.KEEPALIVE, 'seconds');
const srv = https.createRelayedServer(opts, (req, res) => {
  let n = 0; req.on('data', c => n += c.length);
  req.on('end', () => {
    console.log('LISTENER', req.method, req.url, JSON.stringify(req.headers), n);
    if (req.url.startsWith('/' + hc + '/big'))    { res.setHeader('Content-Type','application/octet-stream'); return res.end(Buffer.alloc(100000, 0x41)); }
    if (req.url.startsWith('/' + hc + '/stream')) { res.write('part1-'); res.write('part2-'); return res.end('end'); }
    if (req.url.startsWith('/' + hc + '/empty'))  { res.statusCode = 204; return res.end(); }
    if (req.url.startsWith('/' + hc + '/never'))  { return; }
    if (req.url.startsWith('/' + hc + '/k60'))    { return res.end(Buffer.alloc(60000, 0x4b)); }  // inline: < 64 KiB
    res.setHeader('Content-Type','text/plain'); res.statusCode = 201; res.statusMessage = 'Made It';
    res.end('echo ' + req.method + ' ' + req.url + ' ' + n);
  });
});
srv.on('listening', () => console.log('LISTENER listening'));
srv.on('requestchannel', ch => ch.on('close', code => console.log('LISTENER rvclose', code)));
srv.on('error', e => console.log('LISTENER error', e.message || e));
srv.listen();
