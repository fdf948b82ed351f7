/**
 * The namespace lab used by `sip-alg demo`, the integration tests and the benchmark: phones on a
 * LAN bridge behind a NAT router (MASQUERADE, FORWARD policy DROP but ESTABLISHED/RELATED and
 * LAN→WAN), a provider on the WAN. Addresses exist only inside these namespaces (lab.sh).
 * close() kills every process it started and deletes the namespaces; safe to call twice.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * node's flags for the daemon, as bin/sip-alg's shebang and packaging/sip-alg.service give them:
 * V8 collects each worker's heap on the worker's own thread, without helper threads (three
 * interleaved A/Bs: 1.5-10% less daemon CPU per INVITE; median latency at 1k INVITE/s 169 -> 153 µs;
 * BENCHMARKS.md stop 34). A command-line flag, not a config key: set at run time (v8.setFlagsFromString)
 * it reached the workers but crashed the main thread's next full collection (a V8 check in
 * CppHeap::TraceEpilogue), its heap having started with concurrent marking. A later
 * `--no-single-threaded-gc` in SIPALG_NODE_FLAGS turns it off (bench/ab.ts).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];

export const ROOT = resolve(__dirname, existsSync(resolve(__dirname, '../../../package.json')) ? '../../..' : '../..');
export const SRC_LAB = join(ROOT, 'src/lab');
export const ROUTER_WAN_IP = '203.0.113.1';
export const PROVIDER_IP = '203.0.113.10';
export const phoneIp = (i: number) => `10.77.0.${10 + i}`;
export const phoneIp6 = (i: number) => `fd00:77::${10 + i}`;
export const ROUTER_WAN_IP6 = '2001:db8:113::1';
export const PROVIDER_IP6 = '2001:db8:113::10';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Lab {
  readonly dir: string;
  private readonly procs = new Set<ChildProcess>();
  private closed = false;

  constructor(readonly prefix: string, readonly phones = 2) {
    this.dir = mkdtempSync(join(tmpdir(), `sipalg-${prefix}-`));
  }

  get router(): string { return `${this.prefix}-r`; }
  get provider(): string { return `${this.prefix}-w`; }
  phone(i: number): string { return `${this.prefix}-p${i}`; }

  up(): void {
    this.down();
    const r = spawnSync('bash', [join(SRC_LAB, 'lab.sh'), 'up', this.prefix, String(this.phones)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`lab up failed: ${r.stderr}`);
  }

  down(): void {
    spawnSync('bash', [join(SRC_LAB, 'lab.sh'), 'down', this.prefix], { encoding: 'utf8' });
  }

  /** Runs a command in a namespace and waits (bounded by timeoutMs). */
  run(ns: string, cmd: string, args: string[], timeoutMs = 30000): RunResult {
    const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout: timeoutMs, cwd: this.dir, maxBuffer: 64 << 20 });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Runs a command in a namespace asynchronously (bounded by timeoutMs). */
  runAsync(ns: string, cmd: string, args: string[], timeoutMs = 60000): Promise<RunResult> {
    return new Promise((resolveRun) => {
      const p = this.start(ns, cmd, args);
      let stdout = '', stderr = '';
      p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      // at 'close', not at 'exit': at 'exit' the child's stdout may still hold unread output (a load
      // generator's report, its last line, was lost so: "ended without its report", exit 0); 2 s
      // after 'exit' at the latest (a grandchild that kept the pipe open must not hold the test)
      let done = false, grace: NodeJS.Timeout | undefined;
      const finish = (code: number | null, sig: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        clearTimeout(grace);
        resolveRun({ code: code ?? (sig ? 128 : -1), stdout, stderr });
      };
      p.on('exit', (code, sig) => { grace = setTimeout(() => finish(code, sig), 2000); });
      p.on('close', finish);
    });
  }

  /** Starts a long-running process in a namespace (its stdin a pipe when `stdin`); close() kills it. */
  start(ns: string, cmd: string, args: string[], stdin = false): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { cwd: this.dir, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    this.procs.add(p);
    p.on('exit', () => this.procs.delete(p));
    return p;
  }

  /** Waits until a process prints a line matching `re` (stdout or stderr). */
  static waitFor(p: ChildProcess, re: RegExp, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolveWait, reject) => {
      let seen = '';
      const onData = (d: Buffer) => {
        seen += d.toString();
        const m = re.exec(seen);
        if (m) { cleanup(); resolveWait(m[0]); }
      };
      const onExit = (code: number | null) => { cleanup(); reject(new Error(`${what} exited (${code}) before ready:\n${seen.slice(-2000)}`)); };
      const t = setTimeout(() => { cleanup(); reject(new Error(`${what} not ready after ${timeoutMs} ms:\n${seen.slice(-2000)}`)); }, timeoutMs);
      const cleanup = () => { clearTimeout(t); p.stdout?.off('data', onData); p.stderr?.off('data', onData); p.off('exit', onExit); };
      p.stdout?.on('data', onData);
      p.stderr?.on('data', onData);
      p.on('exit', onExit);
    });
  }

  /** Waits until UDP `ports` have a listening socket in namespace `ns` (a peer that started). */
  async waitListening(ns: string, ports: number[], timeoutMs = 10000, proto: 'udp' | 'tcp' = 'udp'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = this.run(ns, 'ss', ['-H', proto === 'udp' ? '-uln' : '-tln']).stdout;
      if (ports.every((p) => new RegExp(`:${p}\\s`).test(out))) return;
      if (Date.now() > deadline) throw new Error(`nothing listens on ${proto.toUpperCase()} ${ports.join(',')} in ${ns} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Waits until a daemon's state file in `dir` (the lab's own state dir by default) holds a call:
   * a daemon saves at most every 2 s from a 1 s timer, so a call reaches its file up to ~3 s after
   * it starts, later on a loaded machine; a test that kills the daemon waits for the file, not for
   * a fixed time.
   */
  /** The Call-IDs the state files in `dir` hold (snapshots and journals, whatever became of the calls since). */
  savedCallIds(dir = this.dir): Set<string> {
    const ids = new Set<string>();
    for (const n of readdirSync(dir)) {
      if (!/^state-.*\.(json|journal)$/.test(n)) continue;
      for (const m of readFileSync(join(dir, n), 'utf8').matchAll(/"callId":"((?:[^"\\]|\\.)*)"/g)) ids.add(m[1]!);
    }
    return ids;
  }

  /**
   * Waits until a state file in `dir` holds a call (a snapshot's dialogs or a journal line) other than
   * those in `known`: a daemon that adopted an earlier call keeps it in its journal after that call
   * ended, so a test that saves a second call passes what it saw before.
   */
  async waitStateSaved(dir = this.dir, timeoutMs = 15000, known: ReadonlySet<string> = new Set()): Promise<void> {
    const saved = () => [...this.savedCallIds(dir)].some((id) => !known.has(id));
    for (const deadline = Date.now() + timeoutMs; !saved();) {
      if (Date.now() > deadline) throw new Error(`no state file in ${dir} holds a new call after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Waits until `conntrack -L` in the router has a line matching `re`. */
  async waitConntrack(re: RegExp, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.conntrack(['-L']).split('\n').some((l) => re.test(l))) {
      if (Date.now() > deadline) throw new Error(`no conntrack entry matching ${re} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  rules(action: 'install' | 'remove' | 'status', args: string[] = []): RunResult {
    return this.run(this.router, 'bash', [join(ROOT, 'iptables/sip-alg-rules.sh'), action, ...args]);
  }

  /** Starts the real daemon in the router namespace and waits until every worker is bound. */
  async startDaemon(args: string[] = []): Promise<ChildProcess & { log: () => string }> {
    // SIPALG_NODE_FLAGS: node options for the daemon (bench/profile.ts: --perf-basic-prof);
    // SIPALG_DAEMON_ROOT: another build of the project to run as the daemon (bench/ab.ts: code A/B)
    const nodeFlags = [...DAEMON_NODE_FLAGS, ...(process.env.SIPALG_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
    const p = this.start(this.router, process.execPath, [...nodeFlags, join(process.env.SIPALG_DAEMON_ROOT || ROOT, 'bin/sip-alg'), 'run', '--wan', 'wan0', '--control-socket', this.controlSocket, '--state-dir', this.dir, ...args]);
    let log = '';
    p.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    // stdout too (node's --trace-gc and the like write there): read, so a full pipe never blocks the daemon
    p.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    await Lab.waitFor(p, /msg="sip-alg running"/, 15000, 'sip-alg');
    return Object.assign(p, { log: () => log });
  }

  /** Each lab's daemon has its own control socket (sockets live in the file system, not the namespace). */
  get controlSocket(): string {
    return join(this.dir, 'control.sock');
  }

  /** Runs an inspection command (`sip-alg calls`, ...) against this lab's daemon. */
  cli(args: string[], timeoutMs = 30000): RunResult {
    return this.run(this.router, process.execPath, [join(ROOT, 'bin/sip-alg'), ...args, '--socket', this.controlSocket], timeoutMs);
  }

  /** The same, not blocking the event loop (capture and trace stream for a while). */
  cliAsync(args: string[], timeoutMs = 60000): Promise<RunResult> {
    return this.runAsync(this.router, process.execPath, [join(ROOT, 'bin/sip-alg'), ...args, '--socket', this.controlSocket], timeoutMs);
  }

  /** Starts tcpdump on an interface of a namespace; stop() returns the pcap path. */
  async capture(ns: string, iface: string, name: string, filter = 'udp'): Promise<{ stop: () => Promise<string> }> {
    const file = join(this.dir, `${name}.pcap`);
    const p = this.start(ns, 'tcpdump', ['--immediate-mode', '-B', '8192', '-Z', 'root', '-U', '-n', '-i', iface, '-w', file, filter]);
    await Lab.waitFor(p, /listening on/, 10000, 'tcpdump');
    return {
      stop: () => new Promise((res) => {
        setTimeout(() => {
          p.once('exit', () => res(file));
          p.kill('SIGINT');
        }, 300);
      }),
    };
  }

  /** Starts Kamailio as registrar/proxy in the provider namespace. */
  /**
   * Kamailio on the provider (src/lab/kamailio.cfg). `answerDelayMs` holds every 2xx to an INVITE
   * that long before relaying it (cfgutils usleep in onreply_route): a slow provider, so that a
   * callee's media can reach the router before its answer has come back round to the caller.
   */
  async startKamailio(opts: { answerDelayMs?: number } = {}): Promise<ChildProcess> {
    const cfg = join(this.dir, 'kamailio.cfg');
    let text = readFileSync(join(SRC_LAB, 'kamailio.cfg'), 'utf8');
    if (opts.answerDelayMs) {
      text = text.replace('loadmodule "tm.so"', 'loadmodule "tm.so"\nloadmodule "cfgutils.so"');
      text += `\nonreply_route {\n  if ($rs =~ "^2" && $rm == "INVITE") usleep(${Math.round(opts.answerDelayMs * 1000)});\n}\n`;
    }
    writeFileSync(cfg, text);
    const p = this.start(this.provider, 'kamailio', ['-f', cfg, '-DD', '-E', '-m', '64', '-M', '8', '-Y', this.dir, '-w', this.dir]);
    await Lab.waitFor(p, /INFO: <core> \[main\.c:\d+\]: main\(\): processes \(at least\)|\bprocesses \(at least\)|ready to process|init_tcp|Listening on/, 15000, 'kamailio');
    // Kamailio prints its socket list before it binds the sockets (main_loop binds them), so the log
    // line alone raced a phone's first REGISTER under load (SIPp runs with -nr: one lost request is a
    // failed test). The socket itself is the signal; the pause lets the receiving children start.
    await this.waitListening(this.provider, [5060], 15000);
    await new Promise((r) => setTimeout(r, 300));
    return p;
  }

  /** The daemon's /metrics text, fetched inside the router namespace. */
  metrics(): string {
    return this.run(this.router, process.execPath, ['-e', "fetch('http://127.0.0.1:9477/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]).stdout;
  }

  conntrack(args: string[]): string {
    return this.run(this.router, 'conntrack', args).stdout;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const waits = [...this.procs].map((p) => new Promise<void>((r) => {
      if (p.exitCode !== null) return r();
      const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 2000);
      p.once('exit', () => { clearTimeout(t); r(); });
      p.kill('SIGTERM');
    }));
    await Promise.all(waits);
    this.down();
    if (!process.env.SIPALG_KEEP_LAB) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Sum of a Prometheus metric's samples whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** SIPp arguments for one call from a phone to the provider's UAS (built-in uac scenario). */
export function sippUac(localIp: string, target: string, service: string, calls = 1, extra: string[] = []): string[] {
  return ['-sn', 'uac', '-i', localIp, '-p', '5060', '-m', String(calls), '-s', service, target, '-timeout', '20s', '-timeout_error', '-nostdin', '-nr', ...extra];
}
