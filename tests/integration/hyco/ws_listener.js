// hyco-ws listener (spec §10 step 5): echoes every message; closes with the
// code the sender asks for in a "close:CODE" message.
const WS = require('hyco-ws');
const hc = process.env.HC || 'myhc';
const uri = (process.env.RELAY || 'ws://127.0.0.1:9300') + '/$hc/' + hc + '?sb-hc-action=listen';
const srv = WS.createRelayedServer({ server: uri, token: () => WS.createRelayToken(uri, process.env.KEYNAME || 'k', process.env.KEY || 'secret') }, ws => {
  ws.on('open', () => console.log('LISTENER open, protocol', ws.protocol));
  ws.on('message', (m, flags) => {
    const s = Buffer.isBuffer(m) ? m.toString('hex') : m;
    if (typeof m === 'string' && m.startsWith('close:')) return ws.close(+m.slice(6), 'listener says bye');
    console.log('LISTENER got', (flags && flags.binary) ? 'binary' : 'text', s);
    ws.send((flags && flags.binary) ? m : 'echo:' + m, { binary: !!(flags && flags.binary) });
  });
  ws.on('close', (c, r) => console.log('LISTENER close', c, r));
});
srv.on('error', e => console.log('LISTENER error', e.message || e));
srv.on('listening', () => console.log('LISTENER listening'));
setTimeout(() => console.log('LISTENER listening'), 300);
