/**
 * The Grafana dashboard (grafana/sip-alg-dashboard.json) checked against the real registry
 * (src/metrics/registry.ts): every metric a query uses exists with the right type, every label
 * it selects, groups by or prints exists on that metric, and every sipalg_* metric is charted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Metrics } from '../../../src/metrics/registry';
import { ROOT } from '../../../src/lab/lab';


const DASHBOARD = join(ROOT, 'grafana', 'sip-alg-dashboard.json');

interface MetricInfo { type: string; labels: string[] }
type Registry = Map<string, MetricInfo>;

/** Labels Prometheus adds to every scraped series (target labels). */
const TARGET_LABELS = ['instance', 'job'];
const HISTOGRAM_SERIES = ['_bucket', '_sum', '_count'];
/** Functions a counter (or a histogram series) must be wrapped in; a gauge must not be. */
const COUNTER_FUNCS = ['rate', 'irate', 'increase', 'changes', 'resets'];

/**
 * Registry metrics the dashboard does not chart, with the reason. A prefix rule, so a prom-client
 * upgrade adding a default metric does not break the test; the process metrics the dashboard must
 * chart are asserted separately (REQUIRED_PROCESS).
 */
const NOT_CHARTED: { match: (name: string) => boolean; reason: string }[] = [
  { match: (n) => n.startsWith('sipalg_process_') || n.startsWith('sipalg_nodejs_'), reason: "prom-client's default process/Node.js metrics: only a selection is charted (REQUIRED_PROCESS)" },
];
const REQUIRED_PROCESS = ['sipalg_process_resident_memory_bytes', 'sipalg_process_cpu_seconds_total'];

async function loadRegistry(): Promise<Registry> {
  const metrics = new Metrics();
  const out: Registry = new Map();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const obj = metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] } | undefined;
    out.set(m.name, { type: String(m.type), labels: [...(obj?.labelNames ?? [])] });
  }
  return out;
}

interface Query { where: string; expr: string; legend?: string }

/** Every `expr` in the dashboard (panel targets, annotations), with its legend. */
function collectQueries(node: unknown, where: string, out: Query[] = []): Query[] {
  if (Array.isArray(node)) node.forEach((n, i) => collectQueries(n, `${where}[${i}]`, out));
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    const here = typeof o.title === 'string' ? `${where} "${o.title}"` : where;
    if (typeof o.expr === 'string') {
      out.push({ where: `${here}${typeof o.refId === 'string' ? ` ${o.refId}` : ''}`, expr: o.expr, ...(typeof o.legendFormat === 'string' ? { legend: o.legendFormat } : {}) });
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'templating') collectQueries(v, `${here}.${k}`, out);
  }
  return out;
}

interface Use { name: string; base: string; series: string; at: number }

/** Resolves each sipalg_* identifier of an expression to a registry metric. */
function uses(expr: string, reg: Registry, problems: string[], where: string): Use[] {
  const out: Use[] = [];
  for (const m of expr.matchAll(/\bsipalg_[a-z0-9_]+/g)) {
    const name = m[0];
    const info = reg.get(name);
    if (info && info.type !== 'histogram') {
      out.push({ name, base: name, series: '', at: m.index! });
      continue;
    }
    if (info?.type === 'histogram') {
      problems.push(`${where}: ${name} is a histogram: query ${name}_bucket, _sum or _count`);
      continue;
    }
    const suffix = HISTOGRAM_SERIES.find((s) => name.endsWith(s));
    const base = suffix ? name.slice(0, -suffix.length) : '';
    if (suffix && reg.get(base)?.type === 'histogram') {
      out.push({ name, base, series: suffix, at: m.index! });
      continue;
    }
    problems.push(`${where}: ${name} is not a metric of the registry`);
  }
  return out;
}

function labelsOf(u: Use, reg: Registry): Set<string> {
  const s = new Set([...reg.get(u.base)!.labels, ...TARGET_LABELS]);
  if (u.series === '_bucket') s.add('le');
  return s;
}

/** Index of the parenthesis matching the one at `open`. */
function matching(expr: string, open: number): number {
  let depth = 0;
  for (let i = open; i < expr.length; i++) {
    if (expr[i] === '(') depth++;
    else if (expr[i] === ')' && --depth === 0) return i;
  }
  return -1;
}
function matchingBack(expr: string, close: number): number {
  let depth = 0;
  for (let i = close; i >= 0; i--) {
    if (expr[i] === ')') depth++;
    else if (expr[i] === '(' && --depth === 0) return i;
  }
  return -1;
}

const listOf = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);

/** All problems of one PromQL expression (empty when it is consistent with the registry). */
function checkExpr(q: Query, reg: Registry): string[] {
  const problems: string[] = [];
  const { expr, where } = q;
  const used = uses(expr, reg, problems, where);
  // brackets balance (a cheap syntax check: there is no PromQL parser here)
  const stack: string[] = [];
  for (const ch of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ('([{'.includes(ch)) stack.push(')]}'['([{'.indexOf(ch)]!);
    else if (')]}'.includes(ch) && stack.pop() !== ch) { problems.push(`${where}: unbalanced ${ch}`); break; }
  }
  if (stack.length) problems.push(`${where}: unclosed bracket`);

  // selectors: name{label op "value", ...}
  for (const u of used) {
    const after = expr.slice(u.at + u.name.length);
    const sel = /^\s*\{([^}]*)\}/.exec(after);
    if (!sel) continue;
    const allowed = labelsOf(u, reg);
    for (const lm of sel[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"/g)) {
      if (!allowed.has(lm[1]!)) problems.push(`${where}: ${u.name} has no label "${lm[1]}" (labels: ${[...allowed].join(', ')})`);
    }
  }

  // aggregation clauses: every label must exist on every metric aggregated
  const checkScope = (labels: string[], from: number, to: number, what: string) => {
    const inScope = used.filter((u) => u.at > from && u.at < to);
    if (!inScope.length) problems.push(`${where}: ${what} aggregates no sipalg metric`);
    for (const label of labels) {
      for (const u of inScope) {
        if (!labelsOf(u, reg).has(label)) problems.push(`${where}: ${what}: ${u.name} has no label "${label}"`);
      }
    }
  };
  for (const m of expr.matchAll(/\b(by|without)\s*\(([^)]*)\)\s*\(/g)) {
    const open = m.index! + m[0].length - 1;
    checkScope(listOf(m[2]!), open, matching(expr, open), m[0]);
  }
  for (const m of expr.matchAll(/\)\s*(by|without)\s*\(([^)]*)\)/g)) {
    checkScope(listOf(m[2]!), matchingBack(expr, m.index!), m.index!, m[0]);
  }

  // legend {{label}}: on every metric of the query, and kept by the outermost (first) `by`
  const firstBy = /\bby\s*\(([^)]*)\)/.exec(expr);
  for (const m of (q.legend ?? '').matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) {
    for (const u of used) if (!labelsOf(u, reg).has(m[1]!)) problems.push(`${where}: legend {{${m[1]}}}: ${u.name} has no label "${m[1]}"`);
    if (firstBy && !listOf(firstBy[1]!).includes(m[1]!)) problems.push(`${where}: legend {{${m[1]}}}: "${m[1]}" is aggregated away by ${firstBy[0]}`);
  }

  // counters (and histogram series) only through rate() & co; gauges never
  for (const u of used) {
    const fn = /([a-z_]+)\s*\(\s*$/.exec(expr.slice(0, u.at))?.[1];
    const cumulative = u.series !== '' || reg.get(u.base)!.type === 'counter';
    const wrapped = fn !== undefined && COUNTER_FUNCS.includes(fn);
    if (cumulative && !wrapped) problems.push(`${where}: ${u.name} is cumulative: wrap it in ${COUNTER_FUNCS.join('/')}()`);
    if (!cumulative && wrapped) problems.push(`${where}: ${u.name} is a gauge: ${fn}() is meaningless on it`);
  }
  return problems;
}

/** Problems of the whole dashboard, and the registry metrics it uses. */
function checkDashboard(dash: Record<string, unknown>, reg: Registry): { problems: string[]; used: Set<string> } {
  const problems: string[] = [];
  const used = new Set<string>();
  const queries = collectQueries(dash.panels, 'panels').concat(collectQueries(dash.annotations, 'annotations'));
  if (!queries.length) problems.push('no queries found');
  for (const q of queries) {
    problems.push(...checkExpr(q, reg));
    for (const u of uses(q.expr, reg, [], q.where)) used.add(u.base);
    if (!q.expr.includes('instance=~"$instance"')) problems.push(`${q.where}: does not filter on instance=~"$instance"`);
  }
  // template variables: label_values(metric, label)
  const vars = ((dash.templating as { list?: Record<string, unknown>[] } | undefined)?.list ?? []);
  for (const v of vars) {
    const def = typeof v.definition === 'string' ? v.definition : typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query ?? '';
    const lv = /label_values\(\s*(sipalg_[a-z0-9_]+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)/.exec(def);
    if (!lv) continue;
    const where = `variable ${String(v.name)}`;
    const [u] = uses(lv[1]!, reg, problems, where);
    if (u && !labelsOf(u, reg).has(lv[2]!)) problems.push(`${where}: ${u.name} has no label "${lv[2]}"`);
  }
  return { problems, used };
}

const dashboard = (): Record<string, unknown> => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Record<string, unknown>;

test('every query of the dashboard uses real metric names, types and labels', async () => {
  const reg = await loadRegistry();
  assert.ok(reg.has('sipalg_packets_total') && reg.get('sipalg_packet_processing_seconds')?.type === 'histogram', 'registry loaded');
  const { problems } = checkDashboard(dashboard(), reg);
  assert.deepEqual(problems, []);
});

test('the dashboard charts every sipalg metric of the registry', async () => {
  const reg = await loadRegistry();
  const { used } = checkDashboard(dashboard(), reg);
  const missing = [...reg.keys()].filter((n) => !used.has(n) && !NOT_CHARTED.some((x) => x.match(n)));
  assert.deepEqual(missing, [], 'chart these metrics or list them in NOT_CHARTED with a reason');
  for (const n of REQUIRED_PROCESS) {
    assert.ok(reg.has(n), `${n} is in the registry`);
    assert.ok(used.has(n), `the dashboard charts ${n}`);
  }
});

test('the dashboard is importable: schema, datasource and instance variables, panel ids', () => {
  const d = dashboard() as { schemaVersion: number; uid: string; title: string; templating: { list: { name: string; type: string; query?: unknown }[] }; panels: { id: number; type: string; title: string; gridPos: unknown; datasource?: { uid: string }; targets?: { datasource?: { uid: string }; expr: string; refId: string }[] }[] };
  assert.ok(d.schemaVersion >= 36, 'schemaVersion');
  assert.ok(d.uid && d.title);
  const ds = d.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
  assert.equal(ds?.type, 'datasource');
  assert.equal(ds?.query, 'prometheus');
  assert.equal(d.templating.list.find((v) => v.name === 'instance')?.type, 'query');
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const charts = d.panels.filter((p) => p.type !== 'row');
  assert.ok(charts.length >= 20, `${charts.length} panels`);
  for (const p of charts) {
    assert.ok(p.gridPos, `${p.title}: gridPos`);
    assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `${p.title}: panel datasource`);
    assert.ok(p.targets?.length, `${p.title}: has targets`);
    for (const t of p.targets!) {
      assert.equal(t.datasource?.uid, '${DS_PROMETHEUS}', `${p.title} ${t.refId}: target datasource`);
      assert.ok(t.expr.trim(), `${p.title} ${t.refId}: expr`);
    }
  }
});

test('the checker fails on wrong names, labels and types (it can fail)', async () => {
  const reg = await loadRegistry();
  const q = (expr: string, legend?: string) => checkExpr({ where: 't', expr, ...(legend ? { legend } : {}) }, reg);
  const ok = 'sum by (direction, message) (rate(sipalg_messages_total{instance=~"$instance"}[5m]))';
  assert.deepEqual(q(ok, '{{direction}} {{message}}'), []);
  assert.deepEqual(q('histogram_quantile(0.99, sum by (le) (rate(sipalg_packet_processing_seconds_bucket[5m])))'), []);
  assert.deepEqual(q('sum(rate(sipalg_packet_processing_seconds_sum[5m])) / sum(rate(sipalg_packet_processing_seconds_count[5m]))'), []);
  assert.deepEqual(q('sum(rate(sipalg_messages_total[5m])) by (direction)'), []);
  assert.equal(q('sum(rate(sipalg_mesages_total[5m]))').length, 1, 'misspelled metric');
  assert.equal(q('sum by (method) (rate(sipalg_messages_total[5m]))').length, 1, 'label not on the metric (by)');
  assert.equal(q('sum(rate(sipalg_messages_total[5m])) by (method)').length, 1, 'label not on the metric (postfix by)');
  assert.equal(q('sum(rate(sipalg_messages_total{method="INVITE"}[5m]))').length, 1, 'label not on the metric (selector)');
  assert.equal(q('rate(sipalg_messages_total[5m])', '{{method}}').length, 1, 'label not on the metric (legend)');
  assert.equal(q('sum by (direction) (rate(sipalg_messages_total[5m]))', '{{outcome}}').length, 1, 'legend label aggregated away');
  assert.equal(q('sum by (le) (rate(sipalg_messages_total[5m]))').length, 1, 'le only on _bucket');
  assert.equal(q('rate(sipalg_packet_processing_seconds[5m])').length, 1, 'bare histogram name');
  assert.equal(q('rate(sipalg_dialogs_active_bucket[5m])').length, 1, '_bucket of a gauge');
  assert.equal(q('rate(sipalg_dialogs_active[5m])').length, 1, 'rate of a gauge');
  assert.equal(q('sipalg_dialogs_total').length, 1, 'raw counter');
  assert.equal(q('sum(rate(sipalg_dialogs_total[5m])').length, 1, 'unclosed parenthesis');

  const broken = dashboard() as { panels: { targets?: { expr: string }[] }[] };
  const t = broken.panels.find((p) => p.targets?.some((x) => x.expr.includes('sipalg_rewrites_total')))!.targets!.find((x) => x.expr.includes('sipalg_rewrites_total'))!;
  t.expr = t.expr.replace('sipalg_rewrites_total', 'sipalg_rewrite_total');
  const r = checkDashboard(broken as unknown as Record<string, unknown>, reg);
  assert.ok(r.problems.some((p) => p.includes('sipalg_rewrite_total')), 'a misspelled name in the dashboard is reported');
  assert.ok(!r.used.has('sipalg_rewrites_total'), 'and its metric is no longer covered');
});
