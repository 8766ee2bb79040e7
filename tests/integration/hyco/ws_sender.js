// hyco-ws sender (spec §10 step 5). PROTOS=p1,p2 offers subprotocols;
// CLOSECODE makes the listener close with that code instead of us.
const WS = require('hyco-ws'), port = process.env.PORT || 9300, host = process.env.HOST || '127.0.0.1';
const hc = process.env.HC || 'myhc';
const scheme = process.env.TLS ? 'wss' : 'ws';
const url = scheme + '://' + host + ':' + port + '/$hc/' + hc + '/sub/path?foo=bar&sb-hc-action=connect&sb-hc-id=my-trace-id';
const tok = WS.createRelayToken('http://' + host + ':' + port + '/' + hc, process.env.KEYNAME || 'k', process.env.KEY || 'secret');
const c = process.env.PROTOS
  ? new WS(url, process.env.PROTOS.split(','), { headers: { ServiceBusAuthorization: tok } })
  : WS.relayedConnect(url, tok);
c.on('open', () => { console.log('SENDER open, protocol', c.protocol);
  c.send('hello text'); c.send(Buffer.from([1,2,3]), { binary: true });
  setTimeout(() => process.env.CLOSECODE ? c.send('close:' + process.env.CLOSECODE) : c.close(1000, 'bye'), 300); });
c.on('message', (m, flags) => console.log('SENDER got', Buffer.isBuffer(m) ? 'binary ' + m.toString('hex') : m));
c.on('unexpected-response', (q, r) => { console.log('SENDER http', r.statusCode, r.statusMessage); process.exit(0); });
c.on('error', e => console.log('SENDER error', e.message));
c.on('close', (code, r) => { console.log('SENDER close', code, r); process.exit(0); });
