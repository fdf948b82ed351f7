import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../../src/lab/lab';
import { metricsTable } from '../../../src/metrics/reference';

test('the README metrics list is the one generated from the registry', async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- metrics:begin -->\n([\s\S]*?)\n<!-- metrics:end -->/.exec(readme);
  assert.ok(m, 'README has the metrics markers');
  const table = await metricsTable();
  assert.ok(table.includes('`sipalg_messages_total` | counter | direction, message, outcome |'), table);
  assert.equal(m[1], table, 'run ./bin/sip-alg metrics-reference and paste the table into README.md');
});
