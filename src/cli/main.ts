#!/usr/bin/env node
/**
 * sip-alg command line.
 *   sip-alg run [--config FILE] [--KEY VALUE ...]   the daemon, in the foreground
 *   sip-alg demo                                    a lab in network namespaces placing real calls through the ALG
 *   sip-alg config                                  prints the config reference
 *   sip-alg doctor [--json] [--KEY VALUE ...]       checks the router for what breaks the ALG (exit 1 on a failed check)
 *   sip-alg calls|registrations|pinholes|stats [--json]   inspection over the control socket
 *   sip-alg capture --before F --after F [...]      pcaps of SIP as it entered and left the ALG
 *   sip-alg trace [--call-id ID] [--host IP]        one line per SIP packet, with what was rewritten
 *   sip-alg reload                                  re-reads the config (same as SIGHUP)
 *   sip-alg takeover                                router pair: this router became master (keepalived notify)
 *   sip-alg standby                                 router pair: this router became backup; the peer owns the calls
 * Exit status: 0 ok, 1 runtime failure, 2 bad configuration or usage.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { ConfigError, SipAlgError } from '../errors';
import { loadConfig } from '../config/load';
import { controlSocketPath, SCHEMA, type Config } from '../config/schema';
import { configTable } from '../config/reference';
import { log, setLogLevel } from '../log';
import { Metrics } from '../metrics/registry';
import { gcMode, WorkerPool } from '../worker/pool';
import type { WanLink } from '../worker/worker';
import { ControlServer } from '../control/server';
import { controlHandler } from '../control/handler';
import { diffConfig } from '../config/reload';
import { doctorChecks, formatChecks, kernelHelperFindings } from './doctor';



const USAGE = `usage: sip-alg run [--config FILE] [--KEY VALUE ...]
       sip-alg demo [--keep] [--calls N]
       sip-alg config | metrics-reference
       sip-alg doctor [--json] [--config FILE] [--KEY VALUE ...]
       sip-alg calls|registrations|pinholes|stats [--json] [--socket PATH]
       sip-alg capture --before FILE --after FILE [--wire FILE --iface IF] [--call-id ID] [--host IP] [--seconds N]
       sip-alg trace [--call-id ID] [--host IP] [--seconds N]
       sip-alg reload
       sip-alg takeover | standby
keys (file or flag): ${SCHEMA.map((s) => s.key).join(', ')}`;

/** The WAN links of the config (`wan`: one interface or a comma-separated list; the first is the primary). */
export const wanNames = (config: Config): string[] => config.wan.split(',');

/** Link `name` as it is now; throws ConfigError naming what is missing (the interface, its address). */
function resolveLink(config: Config, name: string): WanLink {
  let ifindex: number;
  try {
    ifindex = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
  } catch {
    throw new ConfigError('wan', `interface ${JSON.stringify(name)} does not exist here; allowed: an existing interface (${Object.keys(networkInterfaces()).join(', ')})`);
  }
  let publicIp = config.publicIp;
  if (!publicIp) {
    publicIp = networkInterfaces()[name]?.find((a) => a.family === 'IPv4')?.address;
    if (!publicIp) throw new ConfigError('public-ip', `'auto' found no IPv4 address on ${name}; allowed: an IPv4 address`);
  }
  return { name, ifindex, publicIp };
}

/** The primary link (the first of `wan`), as it is now, with its IPv6 address for NAT66. */
export function resolveWan(config: Config): WanLink & { publicIp6: string | undefined } {
  const l = resolveLink(config, wanNames(config)[0]!);
  // NAT66 (RFC 6296 describes the stateless NPTv6; masquerading is the stateful kind this handles)
  let publicIp6: string | undefined = config.publicIp6 === 'off' ? undefined : config.publicIp6;
  if (publicIp6 === 'auto') publicIp6 = networkInterfaces()[l.name]?.find((a) => a.family === 'IPv6' && !/^(fe[89ab]|::1$)/i.test(a.address))?.address;
  return { ...l, publicIp6 };
}

/** Every WAN link as it is now: one that is missing or has no address yet has ifindex 0 or publicIp '' (and why in `waiting`). */
function linksNow(config: Config): { links: WanLink[]; waiting: string[] } {
  const waiting: string[] = [];
  const links = wanNames(config).map((name) => {
    try {
      return resolveLink(config, name);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      waiting.push(e.message);
      return { name, ifindex: 0, publicIp: '' };
    }
  });
  return { links, waiting };
}

/**
 * The WAN links at start: a link that is down, missing or without an address is waited for, not a
 * fatal error (PPPoE creates ppp0 only once the session is up; DHCP may not have answered yet).
 * With several links the daemon starts once one of them is usable; the others join when they are.
 */
async function waitForWan(config: Config): Promise<WanLink[]> {
  if (config.publicIp && wanNames(config).length > 1) throw new ConfigError('public-ip', `one address for ${wanNames(config).length} WAN links (${config.wan}); allowed: 'auto' (each link's own address) when wan names several links`);
  let warnedAt = 0;
  for (;;) {
    const w = linksNow(config);
    if (w.links.some((l) => l.ifindex && l.publicIp)) {
      if (w.waiting.length) log('warn', 'a WAN link is not usable yet; it is followed and joins when it is', { why: w.waiting.join('; ') });
      return w.links;
    }
    if (Date.now() - warnedAt > 30000) {
      log('warn', 'waiting for the WAN link', { wan: config.wan, why: w.waiting.join('; ') });
      warnedAt = Date.now();
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function run(argv: string[]): Promise<number> {
  let { config } = loadConfig(argv);
  const started = Date.now();
  setLogLevel(config.logLevel);
  let links = await waitForWan(config);
  let publicIp6: string | undefined;
  try { publicIp6 = resolveWan(config).publicIp6; } catch { publicIp6 = config.publicIp6 === 'off' || config.publicIp6 === 'auto' ? undefined : config.publicIp6; }
  // two ALGs on one call translate twice and fight over pinholes (shared/seeds 001, 004)
  const helper = kernelHelperFindings(config.ports, false);
  if (helper.length && config.kernelHelperPolicy === 'refuse') throw new ConfigError('kernel-helper-policy', `the kernel's own SIP helper is attached to the SIP ports: ${helper.join(' | ')}; remove it (sip-alg doctor says how), or set kernel-helper-policy warn; allowed: refuse, warn`);
  if (helper.length) log('warn', "the kernel's own SIP helper is attached to the SIP ports (kernel-helper-policy warn): two ALGs on one call", { found: helper.join(' | ') });
  const metrics = new Metrics();
  const pool = new WorkerPool(config, links, metrics, publicIp6);
  let stopping = false;
  let wanWatch: NodeJS.Timeout | undefined;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal: sig });
    if (wanWatch) clearInterval(wanWatch);
    control?.close();
    await pool.close();
    metrics.close();
    process.exit(0);
  };
  // SIGHUP: re-read the file and flags; timers, limits and policies change without touching calls
  const reload = () => {
    const next = loadConfig(argv).config; // a bad file throws ConfigError: the running config stays
    const d = diffConfig(config, next);
    config = d.merged;
    setLogLevel(config.logLevel);
    pool.reload(config);
    log('info', 'config reloaded', { changed: d.changed.join(',') || 'none', needRestart: d.needRestart.join(',') || undefined });
    return { changed: d.changed, needRestart: d.needRestart };
  };
  process.on('SIGHUP', () => {
    try { reload(); } catch (e) { log('error', 'reload failed, running config kept', { err: e as Error }); }
  });
  let control: ControlServer | undefined;
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    await metrics.listen(config.metricsListen);
  } catch (e) {
    throw new ConfigError('metrics-listen', `cannot listen on ${config.metricsListen}: ${(e as Error).message}`);
  }
  if (config.controlSocket !== 'off') {
    control = new ControlServer(controlSocketPath(config.controlSocket), controlHandler(pool, metrics, reload, started));
    try {
      await control.listen();
    } catch (e) {
      metrics.close();
      throw new ConfigError('control-socket', `cannot listen on ${controlSocketPath(config.controlSocket)}: ${(e as Error).message}; allowed: a path no other daemon listens on, 'auto' (one per network namespace) or 'off'`);
    }
  }
  try {
    await pool.start();
  } catch (e) {
    log('error', 'start-up failed', { err: e as Error });
    control?.close();
    await pool.close();
    metrics.close();
    return 1;
  }
  // each WAN link's address and index follow the link: a DHCP renewal or PPPoE reconnect changes the
  // address (public-ip auto), a PPPoE interface made again has a new index; found again by name
  let lost = '';
  wanWatch = setInterval(() => {
    const w = linksNow(config);
    const why = w.waiting.join('; ');
    if (why && why !== lost) log('warn', 'a WAN link lost its address or went away; waiting for it', { why });
    lost = why;
    // a link that is gone keeps its last address until it has a new one (its calls re-key then)
    const next = w.links.map((l, i) => (l.ifindex && l.publicIp ? l : { ...links[i]!, ifindex: l.ifindex || links[i]!.ifindex }));
    if (next.every((l, i) => l.publicIp === links[i]!.publicIp && l.ifindex === links[i]!.ifindex)) return;
    for (const [i, l] of next.entries()) {
      const was = links[i]!;
      if (l.publicIp !== was.publicIp || l.ifindex !== was.ifindex) log('info', 'the WAN link changed', { wan: l.name, publicIp: l.publicIp, was: was.publicIp, ifindex: l.ifindex, wasIfindex: was.ifindex });
    }
    links = next;
    pool.wanChanged(links);
  }, 1000);
  log('info', 'sip-alg running', { wan: config.wan, publicIp: links.map((l) => l.publicIp || '-').join(','), publicIp6: publicIp6 ?? 'none', queues: `${config.queues.first}:${config.queues.last}`, ports: config.ports.join(','), metrics: config.metricsListen, failClosed: config.failClosed, gc: gcMode(process.execArgv) });
  return new Promise<number>(() => undefined); // runs until a signal
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      return run(rest);
    case 'demo': {
      const { runDemo } = await import('../lab/demo');
      return runDemo(rest);
    }
    case 'config':
      process.stdout.write(configTable() + '\n');
      return 0;
    case 'doctor': {
      const json = rest.includes('--json');
      const { config } = loadConfig(rest.filter((a) => a !== '--json'));
      const checks = await doctorChecks(config);
      process.stdout.write((json ? JSON.stringify(checks, null, 2) : formatChecks(checks)) + '\n');
      return checks.some((c) => c.status === 'fail') ? 1 : 0;
    }
    case 'metrics-reference': {
      const { metricsTable } = await import('../metrics/reference');
      process.stdout.write((await metricsTable()) + '\n');
      return 0;
    }
    case 'calls':
    case 'registrations':
    case 'pinholes':
    case 'stats':
    case 'capture':
    case 'trace':
    case 'takeover':
    case 'standby':
    case 'reload': {
      const { inspect } = await import('./inspect');
      return inspect(cmd, rest);
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return 0;
    default:
      process.stderr.write(`sip-alg: unknown command ${JSON.stringify(cmd ?? '')}\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof SipAlgError && e.code === 'SIPALG_ERR_CONTROL') {
      process.stderr.write(`sip-alg: ${e.message}\n`);
      process.exit(1);
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`sip-alg: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`sip-alg: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
