/** The metrics reference of the README, generated from the registry so it cannot drift (a test compares). */
import { Metrics } from './registry';

export async function metricsTable(): Promise<string> {
  const m = new Metrics();
  const rows = ['| metric | type | labels | meaning |', '|---|---|---|---|'];
  for (const j of await m.registry.getMetricsAsJSON()) {
    if (!j.name.startsWith('sipalg_') || /^sipalg_(process|nodejs)_/.test(j.name)) continue;
    const labels = ((m.registry.getSingleMetric(j.name) as unknown as { labelNames?: string[] }).labelNames ?? []).join(', ');
    rows.push(`| \`${j.name}\` | ${j.type} | ${labels} | ${j.help.replace(/\|/g, '\\|')} |`);
  }
  rows.push('| `sipalg_process_*`, `sipalg_nodejs_*` | | | prom-client\'s default process metrics (resident memory, CPU, event-loop lag, heap) |');
  return rows.join('\n');
}
