/**
 * Checks of what crossed a link, read from a pcap with tshark (an independent SIP dissector) and
 * plain string tests that do not use the ALG's own parser.
 */
import { spawnSync } from 'node:child_process';

export interface WireMessage {
  frame: number;
  /** capture time, s since the epoch */
  time: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  text: string;
}

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 120000 });
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Every UDP datagram that looks like SIP (start line), with its addresses. */
export function readSip(pcap: string): WireMessage[] {
  const out: WireMessage[] = [];
  const text = tshark(['-r', pcap, '-Y', 'udp && !icmp', '-T', 'fields', '-E', 'separator=|', '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'ip.src', '-e', 'udp.srcport', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'udp.payload']);
  for (const line of text.split('\n')) {
    const [frame, time, src, sport, dst, dport, hex] = line.split('|');
    if (!hex) continue;
    const payload = Buffer.from(hex.replace(/:/g, ''), 'hex').toString('latin1');
    if (!/^(SIP\/2\.0 \d{3}[^\r\n]*|[A-Z]+ \S+ SIP\/2\.0)\r?\n/.test(payload)) continue;
    out.push({ frame: Number(frame), time: Number(time), src: src!, sport: Number(sport), dst: dst!, dport: Number(dport), text: payload });
  }
  return out;
}

/** Frames tshark's SIP/SDP dissectors call malformed or flag at warning level or above. */
export function tsharkProblems(pcap: string): string[] {
  const text = tshark(['-r', pcap, '-Y', '(sip || sdp) && (_ws.malformed || _ws.expert.severity >= "warning")', '-T', 'fields', '-e', 'frame.number', '-e', '_ws.expert.message']);
  return text.split('\n').filter((l) => l.trim().length > 0);
}

export interface WireOptions {
  /** no LAN address may appear outside Call-ID */
  lanPrefix: string;
  /** the router's public address: messages from it must carry their real source port */
  publicIp: string;
}

/** Problems found in messages seen on the WAN link; empty when all is right. */
export function checkWan(msgs: WireMessage[], o: WireOptions): string[] {
  const problems: string[] = [];
  for (const m of msgs) {
    const where = `frame ${m.frame} ${m.src}:${m.sport}>${m.dst}:${m.dport}`;
    const split = m.text.indexOf('\r\n\r\n');
    const head = split >= 0 ? m.text.slice(0, split) : m.text;
    const body = split >= 0 ? m.text.slice(split + 4) : '';
    const lines = head.split('\r\n');
    for (const l of lines) {
      if (/^(call-id|i)\s*:/i.test(l)) continue; // RFC 3261 §8.1.1.4: never changed
      if (l.includes(o.lanPrefix)) problems.push(`${where}: LAN address in header: ${l}`);
    }
    for (const l of body.split(/\r?\n/)) if (l.includes(o.lanPrefix)) problems.push(`${where}: LAN address in body: ${l}`);
    const cl = /^(?:content-length|l)\s*:\s*(\d+)\s*$/im.exec(head);
    if (cl && Number(cl[1]) !== Buffer.byteLength(body, 'latin1')) problems.push(`${where}: Content-Length ${cl[1]} but body has ${Buffer.byteLength(body, 'latin1')} bytes`);
    if (m.src !== o.publicIp) continue;
    const isRequest = !m.text.startsWith('SIP/2.0 ');
    if (isRequest) {
      const via = /^(?:via|v)\s*:\s*SIP\/2\.0\/UDP\s+([^;:,\s]+)(?::(\d+))?/im.exec(head);
      if (!via) problems.push(`${where}: no Via`);
      else if (via[1] !== o.publicIp || Number(via[2] ?? 5060) !== m.sport) problems.push(`${where}: top Via sent-by ${via[1]}:${via[2] ?? 5060} but the packet left from ${m.src}:${m.sport}`);
    }
    const contact = /^(?:contact|m)\s*:[^\r\n]*?sips?:(?:[^@>;\s]*@)?([^:;>\s]+)(?::(\d+))?/im.exec(head);
    if (contact && contact[1] === o.publicIp && Number(contact[2] ?? 5060) !== m.sport) problems.push(`${where}: Contact ${contact[1]}:${contact[2] ?? 5060} but the packet left from port ${m.sport}`);
  }
  return problems;
}

/** A short, readable summary line of a message: "INVITE" or "200", plus its top Via/Contact/c=/m=. */
export function describe(m: WireMessage): string {
  const first = m.text.slice(0, m.text.indexOf('\r\n'));
  const start = first.startsWith('SIP/2.0 ') ? first.slice(8, 11) : first.split(' ')[0]!;
  const pick = (re: RegExp) => re.exec(m.text)?.[1]?.trim();
  const via = pick(/^(?:via|v)\s*:\s*SIP\/2\.0\/UDP\s+([^;,\r\n]+)/im);
  const contact = pick(/^(?:contact|m)\s*:\s*([^\r\n]+)/im);
  const c = pick(/^c=IN IP4 (\S+)/m);
  const media = pick(/^m=audio (\d+)/m);
  return `${m.src}:${m.sport} -> ${m.dst}:${m.dport} ${start.padEnd(8)} Via ${via ?? '-'}${contact ? `  Contact ${contact}` : ''}${c ? `  c=${c}` : ''}${media ? ` m=audio ${media}` : ''}`;
}
