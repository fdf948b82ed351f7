/** One-line structured logs (logfmt) on stderr, with levels. */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof LEVELS;

let threshold: number = LEVELS.info;
let prefix = '';

export function setLogLevel(l: Level): void {
  threshold = LEVELS[l];
}
export function setLogContext(p: string): void {
  prefix = p;
}

function fmt(v: unknown): string {
  const s = typeof v === 'string' ? v : v instanceof Error ? `${v.name}: ${v.message}` : JSON.stringify(v);
  return /[\s"=]/.test(s ?? '') ? JSON.stringify(s) : String(s);
}

export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (LEVELS[level] < threshold) return;
  let line = `ts=${new Date().toISOString()} level=${level}${prefix ? ` ${prefix}` : ''} msg=${fmt(msg)}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${fmt(v)}`;
  process.stderr.write(line + '\n');
}

/** when each limited warning was last written, and how many of it were left out since */
const limited = new Map<string, { at: number; left: number }>();

/**
 * A line that can come with every message under some conditions (the kernel refusing pinholes while
 * its expectation table is full: one per INVITE, and again per retry): at most one per `everyMs` for
 * each `key`, the next one written saying how many were left out (`suppressed`). A worker's log line
 * crosses to the main thread; thousands a second cost more than the messages they describe. The
 * counters still count every occurrence.
 */
export function logLimited(key: string, everyMs: number, level: Level, msg: string, fields: Record<string, unknown> = {}, now = Date.now()): void {
  if (LEVELS[level] < threshold) return;
  const s = limited.get(key);
  if (s && now - s.at < everyMs) {
    s.left++;
    return;
  }
  const left = s?.left ?? 0;
  limited.set(key, { at: now, left: 0 });
  log(level, msg, left ? { ...fields, suppressed: left } : fields);
}
