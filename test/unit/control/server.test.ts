import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer } from '../../../src/control/server';
import { ask, request, ControlError } from '../../../src/control/client';

function withServer(handler: ConstructorParameters<typeof ControlServer>[1], fn: (path: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sipalg-ctl-'));
    const path = join(dir, 'run', 'control.sock');
    const s = new ControlServer(path, handler);
    await s.listen();
    try {
      await fn(path);
    } finally {
      s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('one request, one answer; the socket is root-only (0600 in a 0700 directory)', withServer((req, sink) => sink.end({ echo: req.cmd }), async (path) => {
  assert.deepEqual(await ask(path, { cmd: 'calls' }), { echo: 'calls' });
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
}));

test('streams several lines until the server ends; a client hang-up reaches onClose', withServer((_req, sink) => {
  let n = 0;
  const t = setInterval(() => { sink.send({ n: n++ }); if (n === 3) sink.end({ end: true }); }, 5);
  sink.onClose(() => clearInterval(t));
}, async (path) => {
  const got: unknown[] = [];
  await request(path, { cmd: 'tap' }, (o) => got.push(o));
  assert.deepEqual(got, [{ n: 0 }, { n: 1 }, { n: 2 }, { end: true }]);
}));

test('a hang-up stops an endless stream', async () => {
  let closed = false;
  await withServer((_req, sink) => {
    const t = setInterval(() => sink.send({ tick: 1 }), 5);
    sink.onClose(() => { clearInterval(t); closed = true; });
  }, async (path) => {
    const ac = new AbortController();
    let lines = 0;
    await request(path, { cmd: 'tap' }, () => { if (++lines === 3) ac.abort(); }, ac.signal);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(closed, 'the server saw the hang-up');
  })();
});

test('bad requests get an error with a stable code, not a crash', withServer((_req, sink) => sink.end({ ok: true }), async (path) => {
  const raw = await new Promise<string>((resolve) => {
    const s = connect(path);
    let buf = '';
    s.on('data', (d) => (buf += d.toString()));
    s.on('close', () => resolve(buf));
    s.write('not json\n');
  });
  assert.match(raw, /"code":"SIPALG_ERR_CONTROL"/);
  await assert.rejects(request(path, [1, 2] as unknown as object, () => undefined), ControlError);
  assert.deepEqual(await ask(path, { cmd: 'x' }), { ok: true }, 'the server still answers');
}));

test('a handler that throws answers with the error', withServer(() => { throw new Error('boom'); }, async (path) => {
  await assert.rejects(ask(path, { cmd: 'calls' }), /boom/);
}));

test('no daemon: a clear error naming the socket', async () => {
  await assert.rejects(ask('/nonexistent/sip-alg.sock', { cmd: 'calls' }), (e: Error) => e instanceof ControlError && /is the daemon running/.test(e.message));
});
