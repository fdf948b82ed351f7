/** Client side of the control socket (see server.ts): one request, then answer line(s). */
import { connect } from 'node:net';
import { SipAlgError } from '../errors';

export class ControlError extends SipAlgError {
  constructor(message: string) {
    super('SIPALG_ERR_CONTROL', message);
  }
}

/**
 * Sends `req` and calls `onLine` for every JSON line of the answer. Resolves when the daemon ends
 * the answer; `signal` hangs up early (end of a capture).
 */
export function request(path: string, req: object, onLine: (obj: Record<string, unknown>) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = '';
    let failed = false;
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify(req) + '\n'));
    s.on('error', (e: NodeJS.ErrnoException) => {
      failed = true;
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is the daemon running? see --control-socket)' : e.code === 'EACCES' ? ' (root only)' : '';
      reject(new ControlError(`cannot talk to ${path}: ${e.message}${hint}`));
    });
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const obj = JSON.parse(line) as Record<string, unknown>;
        if (typeof obj.error === 'string') {
          failed = true;
          s.destroy();
          return reject(new ControlError(obj.error));
        }
        onLine(obj);
      }
    });
    s.on('close', () => { if (!failed) resolve(); });
    signal?.addEventListener('abort', () => s.end(), { once: true });
  });
}

/** One request, one answer. */
export async function ask<T = Record<string, unknown>>(path: string, req: object): Promise<T> {
  let out: unknown;
  await request(path, req, (o) => (out = o));
  if (out === undefined) throw new ControlError(`no answer from ${path}`);
  return out as T;
}
