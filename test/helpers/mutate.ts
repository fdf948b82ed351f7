/** Seeded mutators for fuzz and oracle tests: SIP messages (the fuzz test, bench/fuzz.ts) and short texts (mutations). */
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


/**
 * Mutated copies of seed texts for oracle tests (a new implementation against the one it replaces):
 * each copy is a seed with one to four characters inserted, deleted or replaced at random places,
 * from a fixed pseudo-random sequence so that a failure repeats.
 */
export function* mutations(seeds: readonly string[], alphabet: string, count: number, seed: number): Generator<string> {
  let x = seed;
  const rnd = (n: number) => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x % n; };
  for (let n = 0; n < count; n++) {
    let s = seeds[rnd(seeds.length)]!;
    for (let k = rnd(4); k >= 0; k--) {
      const at = rnd(s.length + 1);
      const op = rnd(3);
      const ch = alphabet[rnd(alphabet.length)]!;
      s = op === 0 ? s.slice(0, at) + ch + s.slice(at) : op === 1 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + ch + s.slice(at + 1);
    }
    yield s;
  }
}
