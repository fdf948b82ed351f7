/** Config reload (SIGHUP, `sip-alg reload`): which changed keys apply at once and which need a restart. */
import { SCHEMA, type Config } from './schema';

/** Keys a running daemon cannot change: they need a restart (the rules, sockets and port pool depend on them). */
export const RESTART_KEYS = new Set(['wan', 'queues', 'public-ip', 'public-ip6', 'fail-closed', 'queue-maxlen', 'leak-policy', 'metrics-listen', 'control-socket', 'state-dir', 'media-port-min', 'media-port-max', 'first-packet', 'fresh-flow-mark', 'node-id', 'worker-scheduling']);

/** Compares two configs: keys that changed and may apply now, keys that changed but need a restart. */
export function diffConfig(old: Config, next: Config): { changed: string[]; needRestart: string[]; merged: Config } {
  const merged: Config = { ...next };
  const changed: string[] = [], needRestart: string[] = [];
  for (const s of SCHEMA) {
    if (JSON.stringify(old[s.field]) === JSON.stringify(next[s.field])) continue;
    if (RESTART_KEYS.has(s.key)) {
      needRestart.push(s.key);
      (merged as unknown as Record<string, unknown>)[s.field] = old[s.field];
    } else changed.push(s.key);
  }
  return { changed, needRestart, merged };
}
