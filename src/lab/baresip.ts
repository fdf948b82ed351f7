/**
 * Real phones for the lab (issue 14): Debian's baresip, headless. Audio from a file (`aufile`: a
 * 440 Hz tone, 8 kHz mono WAV written here; baresip 1.0's `ausine` only runs at 48 kHz and its
 * G.711 path has no resampler), received audio into `aubridge` (no sound card), auto-answer,
 * driven by `-e` commands and the `ctrl_tcp` control socket (netstring JSON, in the phone's
 * namespace). Each phone gets its own config directory in the lab's directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab } from './lab';

export interface BaresipOptions {
  /** the phone's address; SIP listens on ip:5060 (as two phones behind one router do) */
  ip: string;
  /** user part of its AOR at the registrar */
  user: string;
  /** registrar/proxy host (Kamailio on the provider side) */
  registrar: string;
  /** register (every `regint` seconds, default 60) or not */
  register: boolean;
  regint?: number;
  /** the control socket's port in the phone's namespace */
  ctrlPort?: number;
  /** SIP port (default 5060) */
  port?: number;
}

/** A 300 s 440 Hz tone (baresip hangs up when its aufile source ends), 8 kHz 16-bit mono PCM WAV (what G.711 carries), written once per lab. */
export function tone(dir: string): string {
  const path = join(dir, 'tone-440.wav');
  const n = 8000 * 300;
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVE', 8);
  b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24); b.writeUInt32LE(16000, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000)), 44 + i * 2);
  writeFileSync(path, b);
  return path;
}

/** Writes the phone's config directory and starts baresip in its namespace. */
export async function startBaresip(lab: Lab, ns: string, o: BaresipOptions): Promise<Baresip> {
  const dir = join(lab.dir, `baresip-${o.user}`);
  mkdirSync(dir, { recursive: true });
  const ctrl = o.ctrlPort ?? 4444;
  writeFileSync(join(dir, 'config'), [
    'poll_method\tepoll',
    `sip_listen\t${o.ip}:${o.port ?? 5060}`,
    'sip_trans_def\tudp',
    'audio_player\taubridge,nil',
    `audio_source\taufile,${tone(lab.dir)}`,
    'audio_alert\taubridge,nil',
    'audio_srate\t8000',
    'audio_channels\t1',
    'rtp_stats\tyes',
    `ctrl_tcp_listen\t127.0.0.1:${ctrl}`,
    'module_path\t/usr/lib/baresip/modules',
    'module\tg711.so',
    'module\taufile.so',
    'module\taubridge.so',
    'module_tmp\taccount.so',
    'module_app\tmenu.so',
    'module_app\tctrl_tcp.so',
    '',
  ].join('\n'));
  // no authentication at the lab's registrar; auto-answer; G.711 only
  writeFileSync(join(dir, 'accounts'), `<sip:${o.user}@${o.registrar}>;regint=${o.register ? o.regint ?? 60 : 0};answermode=auto;audio_codecs=PCMU,PCMA\n`);
  writeFileSync(join(dir, 'contacts'), '');
  const p = lab.start(ns, 'baresip', ['-f', dir]);
  const b = new Baresip(lab, ns, p, ctrl);
  await Lab.waitFor(p, /baresip is ready|ready\./i, 15000, `baresip ${o.user}`);
  return b;
}

export class Baresip {
  private out = '';
  constructor(private readonly lab: Lab, private readonly ns: string, readonly proc: ChildProcess, private readonly ctrlPort: number) {
    proc.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  /** Everything the phone printed so far. */
  get log(): string {
    return this.out;
  }

  /** Waits until the phone prints a line matching `re` (after `from`, an offset into its log). */
  async waitLog(re: RegExp, timeoutMs: number, from = 0): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.out.slice(from));
      if (m) return m[0];
      if (Date.now() > end) throw new Error(`baresip: no ${re} after ${timeoutMs} ms:\n${this.out.slice(-2500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * One ctrl_tcp command (netstring-framed JSON), run from inside the phone's namespace; waits for
   * baresip's response (up to 10 s, tried twice: a loaded machine must not lose a command silently)
   * and throws when there is none.
   */
  command(command: string, params = ''): string {
    const js = `const s=require('net').createConnection(${this.ctrlPort},'127.0.0.1',()=>{const m=JSON.stringify({command:${JSON.stringify(command)},params:${JSON.stringify(params)},token:'t'});s.write(Buffer.byteLength(m)+':'+m+',');});let b='';s.on('error',e=>{process.stdout.write('error '+e.message);process.exit(1)});s.on('data',d=>{b+=d;if(/"response":true/.test(b)){process.stdout.write(b);s.end();process.exit(0);}});setTimeout(()=>{process.stdout.write(b);process.exit(1)},10000);`;
    let out = '';
    for (let i = 0; i < 2; i++) {
      const r = this.lab.run(this.ns, process.execPath, ['-e', js], 20000);
      out = r.stdout;
      if (r.code === 0 && /"response":true/.test(out)) return out;
    }
    throw new Error(`baresip did not answer the command ${command} ${params}: ${out.slice(-300)}`);
  }
}

