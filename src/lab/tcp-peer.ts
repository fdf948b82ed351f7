/**
 * A SIP-over-TCP peer for the lab that controls segmentation, which SIPp cannot: the client packs
 * several messages into one write, spreads one message over several writes (TCP_NODELAY, so each
 * write is its own segment), then sends many requests over the same connection; the server answers
 * every request with a 200 that copies its Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
 * Both ends frame what they receive by Content-Length (RFC 3261 §18.3) and print a JSON summary.
 *
 *   node tcp-peer.js server IP PORT COUNT
 *   node tcp-peer.js client LOCAL_IP SERVER_IP PORT COUNT
 */
import { createConnection, createServer, type Socket } from 'node:net';

const CRLF = '\r\n';

/** Cuts complete messages off the front of a stream buffer. */
function framer(onMessage: (m: string) => void, onBad: (why: string) => void) {
  let buf = '';
  return (chunk: Buffer) => {
    buf += chunk.toString('latin1');
    for (;;) {
      buf = buf.replace(/^(\r\n)+/, '');
      const h = buf.indexOf('\r\n\r\n');
      if (h < 0) return;
      if (!/^([A-Z]+ \S+ SIP\/2\.0|SIP\/2\.0 \d{3} )/.test(buf)) { onBad(`no start line: ${JSON.stringify(buf.slice(0, 60))}`); buf = ''; return; }
      const cl = /^(?:Content-Length|l)\s*:\s*(\d+)\s*$/im.exec(buf.slice(0, h));
      if (!cl) { onBad('no Content-Length'); buf = ''; return; }
      const len = h + 4 + Number(cl[1]);
      if (buf.length < len) return;
      onMessage(buf.slice(0, len));
      buf = buf.slice(len);
    }
  };
}

/** LAN addresses outside Call-ID: what must never cross the WAN. */
const leak = (m: string) => /10\.77\.0\.\d+|fd00:77:/i.test(m.replace(/^(Call-ID|i)\s*:.*$/gim, ''));
/** An address as a SIP host (RFC 3261 §25.1: IPv6 in brackets). */
const host = (ip: string) => (ip.includes(':') ? `[${ip}]` : ip);

function request(method: string, n: number, localIp: string, serverIp: string, port: number, bodyPad = 0): string {
  const local = host(localIp), server = host(serverIp), af = localIp.includes(':') ? 'IP6' : 'IP4';
  const sdp = method === 'INVITE' ? ['v=0', `o=- ${n} 1 IN ${af} ${localIp}`, 's=-', `c=IN ${af} ${localIp}`, 't=0 0', `m=audio ${6000 + 2 * (n % 50)} RTP/AVP 0 8 101`, 'a=rtpmap:0 PCMU/8000', ...Array.from({ length: bodyPad }, (_, i) => `a=x-pad${i}:${'p'.repeat(60)}`), ''].join(CRLF) : '';
  return [
    `${method} sip:svc@${server}:${port};transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP ${local}:5060;branch=z9hG4bK-tcp-${n};rport`,
    `From: <sip:phone@${local}:5060>;tag=f${n}`,
    `To: <sip:svc@${server}:${port}>`,
    `Call-ID: ${n}-tcp@${local}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:phone@${local}:5060;transport=tcp>`,
    'Max-Forwards: 70',
    ...(sdp ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ].join(CRLF);
}

function server(ip: string, port: number, count: number): void {
  const got = { received: 0, leaks: [] as string[], bad: [] as string[], connections: 0 };
  const done = () => { process.stdout.write(JSON.stringify(got) + '\n'); process.exit(0); };
  const srv = createServer((s: Socket) => {
    got.connections++;
    s.setNoDelay(true);
    s.on('data', framer((m) => {
      got.received++;
      if (leak(m)) got.leaks.push(m.split(CRLF).find((l) => /10\.77\./.test(l) && !/^Call-ID/i.test(l)) ?? m.slice(0, 80));
      const hdr = (name: string) => m.split(CRLF).filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'));
      const resp = ['SIP/2.0 200 OK', ...hdr('Via'), ...hdr('From'), ...hdr('To').map((t) => `${t};tag=srv`), ...hdr('Call-ID'), ...hdr('CSeq'), `Contact: <sip:svc@${host(ip)}:${port};transport=tcp>`, 'Content-Length: 0', '', ''].join(CRLF);
      s.write(resp);
      if (got.received >= count) setTimeout(done, 300);
    }, (why) => got.bad.push(why)));
    s.on('error', () => undefined);
  });
  srv.listen(port, ip, () => process.stderr.write('listening\n'));
  setTimeout(done, 60000);
}

function client(local: string, ip: string, port: number, count: number): void {
  const got = { sent: 0, responses: 0, badVia: [] as string[], bad: [] as string[], localPort: 0 };
  const s = createConnection({ host: ip, port, localAddress: local });
  s.setNoDelay(true);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let waiting: (() => void) | undefined;
  s.on('data', framer((m) => {
    got.responses++;
    // the response comes back through the ALG: its Via must name the phone as it wrote it
    const via = /^Via:\s*(.*)$/im.exec(m)?.[1] ?? '';
    if (!via.startsWith(`SIP/2.0/TCP ${host(local)}:5060;branch=`)) got.badVia.push(via);
    waiting?.();
  }, (why) => got.bad.push(why)));
  const finish = () => { process.stdout.write(JSON.stringify(got) + '\n'); s.end(); setTimeout(() => process.exit(0), 200); };
  s.on('error', (e) => { got.bad.push(String(e)); finish(); });
  s.on('connect', async () => {
    got.localPort = s.localPort ?? 0;
    let n = 1;
    // 1. several messages in one segment
    s.write(request('INVITE', n++, local, ip, port) + request('OPTIONS', n++, local, ip, port) + CRLF + CRLF + request('OPTIONS', n++, local, ip, port));
    got.sent += 3;
    await sleep(300);
    // 2. one message over several segments: cut inside the Via host, inside the body
    const big = request('INVITE', n++, local, ip, port, 30);
    const cuts = [20, big.indexOf(host(local)) + 4, big.indexOf('c=IN IP') + 12, big.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      s.write(big.slice(i === 0 ? 0 : cuts[i - 1]!, cuts[i]!));
      await sleep(40);
    }
    s.write(big.slice(cuts[cuts.length - 2]!));
    got.sent++;
    await sleep(300);
    // 3. many requests over the same connection, each after the previous answer
    while (got.sent < count) {
      const answered = new Promise<void>((r) => { waiting = r; setTimeout(r, 2000); });
      s.write(request(got.sent % 5 === 0 ? 'INVITE' : 'OPTIONS', n++, local, ip, port));
      got.sent++;
      await answered;
    }
    const t = Date.now();
    while (got.responses < got.sent && Date.now() - t < 3000) await sleep(50);
    finish();
  });
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'server') server(a[0]!, Number(a[1]), Number(a[2]));
else if (mode === 'client') client(a[0]!, a[1]!, Number(a[2]), Number(a[3]));
else { process.stderr.write('usage: tcp-peer server IP PORT COUNT | client LOCAL IP PORT COUNT\n'); process.exit(2); }
