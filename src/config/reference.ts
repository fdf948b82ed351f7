/** The config reference as a Markdown table, generated from the schema (README stays in sync: see test/unit/config). */
import { SCHEMA } from './schema';

export function configTable(): string {
  const rows = SCHEMA.map((s) => `| \`${s.key}\` | \`--${s.key}\` | \`${s.default === undefined ? 'auto' : typeof s.default === 'object' && !Array.isArray(s.default) ? `${(s.default as { first: number }).first}:${(s.default as { last: number }).last}` : Array.isArray(s.default) ? s.default.join(',') : s.key.endsWith('-mark') ? `0x${(s.default as number).toString(16)}` : String(s.default)}\` | ${s.doc} |`);
  return ['| key (JSON file) | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
