import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configTable } from '../../../src/config/reference';

test('the README config reference is the one generated from the schema', () => {
  const readme = readFileSync(join(__dirname, '../../../../README.md'), 'utf8');
  const m = /<!-- config:begin -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
  assert.ok(m, 'README has the config markers');
  assert.equal(m[1], configTable(), 'run ./bin/sip-alg config and paste the table into README.md');
});
