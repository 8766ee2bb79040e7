// Microsoft's hyco-https listener for bench/listener.sh: answers every request
// with a 64-byte body (as shird's /v1/test/blob?bytes=64 does) and, unlike the
// test listener, writes nothing per request, so its rate is the library's own.
const https = require('hyco-https');
const uri = process.env.RELAY + '/$hc/' + process.env.HC + '?sb-hc-action=listen';
const body = Buffer.alloc(64, 0x61);
const srv = https.createRelayedServer(
  { server: uri, token: () => https.createRelayToken(uri, process.env.KEYNAME, process.env.KEY) },
  (req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/octet-stream');
      res.end(body);
    });
  });
srv.on('listening', () => console.log('LISTENER listening'));
srv.on('error', e => console.log('LISTENER error', e.message || e));
srv.listen();
