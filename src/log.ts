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
