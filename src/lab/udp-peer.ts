/**
 * A SIP-over-UDP peer for the lab that sends messages larger than the path MTU (a busy-lamp-field
 * NOTIFY with a big dialog-info body, seed 002), which then cross the router as IP fragments.
 * SIPp cannot build them; this peer sends one and reports what it receives.
 *
 *   node udp-peer.js send LOCAL_IP LOCAL_PORT DEST_IP DEST_PORT BODY_BYTES [R-URI] [WAIT_MS]
 *     sends one NOTIFY (Via/Contact name LOCAL_IP:LOCAL_PORT), then waits WAIT_MS (default 3000)
 *     for messages on the same socket; prints {"received":[...]} with each message's source, length and text
 *   node udp-peer.js recv LOCAL_IP LOCAL_PORT COUNT WAIT_MS
 *     prints each of up to COUNT received datagrams (text, source) and answers a request with a
 *     200 that copies its Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2)
 */
import { createSocket } from 'node:dgram';

const CRLF = '\r\n';
const host = (ip: string) => (ip.includes(':') ? `[${ip}]` : ip);

/** A NOTIFY for the dialog event package (RFC 4235) whose body is `bodyBytes` long. */
export function bigNotify(localIp: string, localPort: number, ruri: string, bodyBytes: number, tag: string): string {
  const entry = (i: number) => `<dialog id="d${i}" direction="recipient"><state>confirmed</state><remote><target uri="sip:${1000 + i}@pbx.example"/></remote></dialog>\n`;
  let body = '<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:blf@pbx.example">\n';
  for (let i = 0; body.length < bodyBytes - 16; i++) body += entry(i);
  body = (body + '</dialog-info>\n').padEnd(bodyBytes, ' ');
  return [
    `NOTIFY ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${host(localIp)}:${localPort};branch=z9hG4bK-big-${tag};rport`,
    'Max-Forwards: 70',
    `From: <sip:blf@pbx.example>;tag=${tag}`,
    'To: <sip:phone1@pbx.example>;tag=sub1',
    `Call-ID: big-${tag}@${localIp}`,
    'CSeq: 7 NOTIFY',
    `Contact: <sip:blf@${host(localIp)}:${localPort}>`,
    'Event: dialog',
    'Subscription-State: active;expires=3600',
    'Content-Type: application/dialog-info+xml',
    `Content-Length: ${Buffer.byteLength(body, 'latin1')}`,
    '',
    body,
  ].join(CRLF);
}

function ok(req: string): string {
  const keep = req.split(CRLF).filter((l) => /^(Via|v|From|f|To|t|Call-ID|i|CSeq)\s*:/i.test(l));
  return ['SIP/2.0 200 OK', ...keep, 'Content-Length: 0', '', ''].join(CRLF);
}

function main(argv: string[]): void {
  const [mode, ip, portS] = argv;
  const port = Number(portS);
  const sock = createSocket(ip!.includes(':') ? 'udp6' : 'udp4');
  const received: { from: string; len: number; text: string }[] = [];
  const finish = () => {
    process.stdout.write(`${JSON.stringify({ received })}\n`);
    sock.close();
  };
  if (mode === 'send') {
    const [, , , dest, destPortS, bodyS, ruri, waitS] = argv;
    const msg = bigNotify(ip!, port, ruri || `sip:blf@${host(dest!)}:${destPortS}`, Number(bodyS), String(process.pid));
    sock.on('message', (m, r) => received.push({ from: `${r.address}:${r.port}`, len: m.length, text: m.toString('latin1') }));
    sock.bind(port, ip, () => {
      sock.send(Buffer.from(msg, 'latin1'), Number(destPortS), dest, (e) => {
        if (e) { process.stderr.write(`send: ${e.message}\n`); process.exit(1); }
        process.stderr.write(`sent ${msg.length} bytes\n`);
        setTimeout(finish, Number(waitS ?? 3000));
      });
    });
  } else if (mode === 'recv') {
    const count = Number(argv[3]);
    const timer = setTimeout(finish, Number(argv[4]));
    sock.on('message', (m, r) => {
      const text = m.toString('latin1');
      received.push({ from: `${r.address}:${r.port}`, len: m.length, text });
      if (/^[A-Z]+ \S+ SIP\/2\.0\r\n/.test(text)) sock.send(Buffer.from(ok(text), 'latin1'), r.port, r.address);
      if (received.length >= count) { clearTimeout(timer); setTimeout(finish, 200); }
    });
    sock.bind(port, ip, () => process.stderr.write(`listening ${ip}:${port}\n`));
  } else {
    process.stderr.write('usage: udp-peer.js send LOCAL_IP LOCAL_PORT DEST_IP DEST_PORT BODY_BYTES [R-URI] [WAIT_MS] | recv LOCAL_IP LOCAL_PORT COUNT WAIT_MS\n');
    process.exit(2);
  }
}

if (require.main === module) main(process.argv.slice(2));
