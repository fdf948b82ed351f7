import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQueueStats } from '../../../src/metrics/queue-stats';

test('nfnetlink_queue lines: waiting, dropped, user-dropped, id sequence per queue', () => {
  const text = '    0  12345     0 2 65535     0     0       42  1\n    1 -4001     3 2 65535     7     2      900  1\ngarbage\n';
  assert.deepEqual(parseQueueStats(text), [
    { queue: 0, portid: 12345, waiting: 0, dropped: 0, userDropped: 0, idSequence: 42 },
    { queue: 1, portid: -4001, waiting: 3, dropped: 7, userDropped: 2, idSequence: 900 },
  ]);
  assert.deepEqual(parseQueueStats(''), []);
});
