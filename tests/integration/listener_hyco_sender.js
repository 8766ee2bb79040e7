// A hyco-ws (Microsoft's npm client) sender for test_listener.py: connects to
// /$hc/HC/tcp/NAME through the relay, sends a text and a binary message, and
// prints what comes back (the node's tunnel echoes through a TCP echo target).
const WS = require('hyco-ws');
const port = process.env.PORT, hc = process.env.HC || 'myhc', fwd = process.env.FORWARD || 'echo';
const url = 'ws://127.0.0.1:' + port + '/$hc/' + hc + '/tcp/' + fwd + '?sb-hc-action=connect';
const tok = WS.createRelayToken('http://127.0.0.1:' + port + '/' + hc, process.env.KEYNAME, process.env.KEY);
const c = WS.relayedConnect(url, tok);
let got = 0;
c.on('open', () => { console.log('SENDER open');
  c.send('hello text'); c.send(Buffer.from([1, 2, 3]), { binary: true }); });
c.on('message', m => {
  const b = Buffer.isBuffer(m) ? m : Buffer.from(m);
  console.log('SENDER got ' + b.toString('hex'));
  got += b.length;
  if (got >= 13) c.close(1000, 'bye');
});
c.on('unexpected-response', (q, r) => { console.log('SENDER http', r.statusCode, r.statusMessage); process.exit(0); });
c.on('error', e => console.log('SENDER error', e.message));
c.on('close', (code, r) => { console.log('SENDER close', code); process.exit(0); });
