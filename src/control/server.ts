/**
 * The local control socket (a Unix stream socket, mode 0600 in a 0700 directory: root only), in
 * the spirit of FortiGate's `diagnose sys sip-proxy`. One JSON request per line; the answer is one
 * JSON line, or for streams (capture, trace) one JSON line per event until the client hangs up or
 * the stream ends with {"end":true}.
 */
import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { log } from '../log';

export interface ControlRequest {
  cmd: string;
  [k: string]: unknown;
}

export interface StreamSink {
  send(obj: unknown): boolean;
  end(obj?: unknown): void;
  /** called once when the client goes away or the stream ends */
  onClose(fn: () => void): void;
}

export type Handler = (req: ControlRequest, sink: StreamSink) => void | Promise<void>;

const MAX_REQUEST = 64 * 1024;

/** Whether a process accepts connections on the Unix socket at `path` (within 1 s). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    const done = (v: boolean) => { clearTimeout(t); c.destroy(); resolve(v); };
    const t = setTimeout(() => done(false), 1000);
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}

export class ControlServer {
  private server: Server | undefined;

  constructor(readonly path: string, private readonly handler: Handler) {}

  async listen(): Promise<void> {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let isSocket = false;
    try { isSocket = statSync(this.path).isSocket(); } catch { /* not there */ }
    if (isSocket) {
      // another daemon (another namespace or WAN on this host) may listen there: never take its
      // socket away; one left by a killed daemon refuses connections and is removed
      if (await answers(this.path)) throw new Error(`another sip-alg daemon listens on ${this.path}`);
      rmSync(this.path);
    }
    this.server = createServer((s) => this.accept(s));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.path, () => {
        chmodSync(this.path, 0o600);
        resolve();
      });
    });
  }

  private accept(s: Socket): void {
    let buf = '';
    let closed = false;
    const closers: (() => void)[] = [];
    const finish = () => {
      if (closed) return;
      closed = true;
      for (const f of closers) try { f(); } catch { /* best effort */ }
    };
    s.on('close', finish);
    s.on('error', finish);
    const sink: StreamSink = {
      send: (obj) => !closed && s.write(JSON.stringify(obj) + '\n'),
      end: (obj) => {
        if (closed) return;
        if (obj !== undefined) s.write(JSON.stringify(obj) + '\n');
        s.end();
        finish();
      },
      onClose: (fn) => closers.push(fn),
    };
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) return sink.end({ error: 'request too large', code: 'SIPALG_ERR_CONTROL' });
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      s.removeAllListeners('data');
      let req: ControlRequest;
      try {
        req = JSON.parse(line) as ControlRequest;
        if (typeof req !== 'object' || req === null || typeof req.cmd !== 'string') throw new Error('needs {"cmd": ...}');
      } catch (e) {
        return sink.end({ error: `bad request: ${(e as Error).message}`, code: 'SIPALG_ERR_CONTROL' });
      }
      Promise.resolve().then(() => this.handler(req, sink)).catch((e: Error) => {
        log('warn', 'control request failed', { cmd: req.cmd, err: e });
        sink.end({ error: e.message, code: 'SIPALG_ERR_CONTROL' });
      });
    });
  }

  close(): void {
    this.server?.close();
    this.server = undefined;
    try { rmSync(this.path); } catch { /* gone */ }
  }
}
