/** A seeded mutator over real SIP messages, shared by the fuzz test and bench/fuzz.ts. */
/** xorshift32: a seeded PRNG so a failure can be replayed */
export function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

export function mutate(base: Buffer, r: () => number): Buffer {
  const b = Buffer.from(base);
  const n = 1 + Math.floor(r() * 6);
  let out = b;
  for (let k = 0; k < n; k++) {
    const op = Math.floor(r() * 7);
    const at = Math.floor(r() * Math.max(1, out.length));
    if (op === 0) out[at] = Math.floor(r() * 256); // flip a byte
    else if (op === 1) out = out.subarray(0, at); // truncate
    else if (op === 2) out = Buffer.concat([out.subarray(0, at), Buffer.from('\r\n'), out.subarray(at)]);
    else if (op === 3) out = Buffer.concat([out.subarray(0, at), Buffer.alloc(Math.floor(r() * 2000), 0x41 + Math.floor(r() * 26)), out.subarray(at)]);
    else if (op === 4) out = Buffer.concat([out.subarray(0, at), Buffer.from([0]), out.subarray(at)]);
    else if (op === 5) out = Buffer.concat([out.subarray(0, at), Buffer.from(['10.77.0.12:5060', ':', '<sip:', ';rport=', 'Content-Length: 9', 'm=audio 1 RTP/AVP 0', ','][Math.floor(r() * 7)]!), out.subarray(at)]);
    else out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + Math.floor(r() * 40)))]);
  }
  return out;
}

