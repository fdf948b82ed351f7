/**
 * A real Prometheus (Debian's) scrapes the real daemon in the router namespace during calls,
 * registrations and a malformed message; then every PromQL expression of every panel of the Grafana
 * dashboard is evaluated over Prometheus' HTTP API and must return a non-empty result (issue 14).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { phoneIp, PROVIDER_IP, ROOT, SRC_LAB } from '../../src/lab/lab';
import { prepare } from '../../src/lab/media';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sippArgs = ['-nostdin', '-nr', '-timeout', '30s', '-timeout_error'];

interface Panel { title: string; targets?: { expr: string }[]; panels?: Panel[] }

/** Every (panel title, expression) of the dashboard, Grafana's variables replaced by values Prometheus takes. */
export function dashboardQueries(): { title: string; expr: string }[] {
  const d = JSON.parse(readFileSync(join(ROOT, 'grafana/sip-alg-dashboard.json'), 'utf8')) as { panels: Panel[] };
  const out: { title: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) out.push({ title: p.title, expr: t.expr.replace(/\$instance/g, '.*').replace(/\$__rate_interval/g, '20s').replace(/\$__range/g, '5m') });
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

test('Prometheus scrapes the daemon during calls; every PromQL expression of the dashboard returns data', { timeout: 240000 }, async (t) => {
  const { lab, log } = await prepare('sap1', 2, 'alg');
  try {
    const cfg = join(lab.dir, 'prometheus.yml');
    writeFileSync(cfg, 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sip-alg\n    static_configs:\n      - targets: [\'127.0.0.1:9477\']\n');
    const prom = lab.start(lab.router, 'prometheus', ['--config.file', cfg, '--storage.tsdb.path', join(lab.dir, 'tsdb'), '--web.listen-address', '127.0.0.1:9090', '--log.level', 'warn']);
    let promLog = '';
    prom.stderr?.on('data', (d: Buffer) => (promLog += d.toString()));
    const api = async (path: string): Promise<any> => {
      const r = lab.run(lab.router, process.execPath, ['-e', `fetch('http://127.0.0.1:9090${path}').then(r=>r.text()).then(t=>process.stdout.write(t)).catch(e=>process.stdout.write(JSON.stringify({error:String(e)})))`]);
      try { return JSON.parse(r.stdout); } catch { return { error: r.stdout.slice(0, 200) }; }
    };
    for (let i = 0; ; i++) {
      const r = await api('/api/v1/query?query=up');
      if (r.status === 'success' && r.data.result.some((x: any) => x.value[1] === '1')) break;
      if (i > 60) throw new Error(`prometheus did not scrape the daemon: ${JSON.stringify(r)}\n${promLog.slice(-1500)}`);
      await sleep(500);
    }
    // traffic: a registration (Kamailio), a call with RTP, a malformed message naming the phone (dropped, counted)
    await lab.startKamailio();
    const reg = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    assert.equal(reg.code, 0, `${reg.stdout.slice(-600)}\n${log().slice(-1500)}`);
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-nostdin', '-nr']); // no -m 1: SIPp's UAS could end its one call before the ACK arrived (call limit hit while paused in the audio NOP); lab.close() stops it
    let uasOut = '';
    uas.stdout?.on('data', (d: Buffer) => (uasOut += d.toString()));
    uas.stderr?.on('data', (d: Buffer) => (uasOut += d.toString()));
    await lab.waitListening(lab.provider, [5080]);
    const call = lab.runAsync(lab.phone(2), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(2), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs]);
    const bad = `const d=require('dgram').createSocket('udp4');d.bind(5062,'${phoneIp(1)}',()=>d.send(Buffer.from('INVITE sip:a@${PROVIDER_IP} SIP/2.0\\r\\nVia: SIP/2.0/UDP ${phoneIp(1)}:5062;branch=z9hG4bKbad\\r\\nTo: <sip'),5060,'${PROVIDER_IP}',()=>d.close()));`;
    assert.equal(lab.run(lab.phone(1), process.execPath, ['-e', bad]).code, 0);
    await sleep(4000); // the call is up: dialogs, pinholes, media flows
    const queries = dashboardQueries();
    assert.ok(queries.length >= 40, `the dashboard's expressions: ${queries.length}`);
    let empty: string[] = [];
    for (let i = 0; i < 20; i++) {
      empty = [];
      for (const q of queries) {
        const r = await api(`/api/v1/query?query=${encodeURIComponent(q.expr)}`);
        if (r.status !== 'success') empty.push(`${q.title}: ${q.expr}: ${r.error ?? JSON.stringify(r).slice(0, 200)}`);
        else if (!r.data.result.length) empty.push(`${q.title}: ${q.expr}: empty`);
      }
      if (!empty.length) break;
      await sleep(1000);
    }
    const r = await call;
    if (r.code !== 0) {
      uas.kill('SIGUSR1');
      await sleep(500);
      t.diagnostic(`the provider's SIPp: ${uasOut.slice(-3000)}`);
      t.diagnostic(lab.metrics().split('\n').filter((l: string) => /^sipalg_(packets|messages|dialog|queue_packets)/.test(l)).join('\n'));
    }
    assert.equal(r.code, 0, `${r.stdout.slice(-600)}\n${log().slice(-1500)}`);
    t.diagnostic(`${queries.length} expressions of ${new Set(queries.map((q) => q.title)).size} panels evaluated by Prometheus: ${queries.length - empty.length} returned data`);
    assert.deepEqual(empty, [], 'every panel expression returns data');
  } finally {
    await lab.close();
  }
});
