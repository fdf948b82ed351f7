import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffConfig } from '../../../src/config/reload';
import { defaults } from '../../../src/config/load';

test('reload: timers and policies apply; sockets, queues and the port pool wait for a restart and keep their running value', () => {
  const old = defaults();
  const next = { ...old, maxCallSeconds: 3600, logLevel: 'debug' as const, wan: 'eth9', mediaPortMin: 20000 };
  const d = diffConfig(old, next);
  assert.deepEqual(d.changed, ['max-call-seconds', 'log-level']);
  assert.deepEqual(d.needRestart, ['wan', 'media-port-min']);
  assert.equal(d.merged.maxCallSeconds, 3600);
  assert.equal(d.merged.wan, old.wan);
  assert.equal(d.merged.mediaPortMin, old.mediaPortMin);
  assert.deepEqual(diffConfig(old, { ...old }), { changed: [], needRestart: [], merged: old });
});
