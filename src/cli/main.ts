#!/usr/bin/env node
/**
 * sip-alg command line.
 *   sip-alg run [--config FILE] [--KEY VALUE ...]   the daemon, in the foreground
 *   sip-alg demo                                    a lab in network namespaces placing real calls through the ALG
 *   sip-alg config                                  prints the config reference
 * Exit status: 0 ok, 1 runtime failure, 2 bad configuration or usage.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { ConfigError } from '../errors';
import { loadConfig } from '../config/load';
import { SCHEMA, type Config } from '../config/schema';
import { configTable } from '../config/reference';
import { log, setLogLevel } from '../log';
import { Metrics } from '../metrics/registry';
import { WorkerPool } from '../worker/pool';

const USAGE = `usage: sip-alg run [--config FILE] [--KEY VALUE ...]
       sip-alg demo [--keep] [--calls N]
       sip-alg config
keys (file or flag): ${SCHEMA.map((s) => s.key).join(', ')}`;

export function resolveWan(config: Config): { publicIp: string; ifindex: number } {
  let ifindex: number;
  try {
    ifindex = Number(readFileSync(`/sys/class/net/${config.wan}/ifindex`, 'utf8').trim());
  } catch {
    throw new ConfigError('wan', `interface ${JSON.stringify(config.wan)} does not exist here; allowed: an existing interface (${Object.keys(networkInterfaces()).join(', ')})`);
  }
  let publicIp = config.publicIp;
  if (!publicIp) {
    publicIp = networkInterfaces()[config.wan]?.find((a) => a.family === 'IPv4')?.address;
    if (!publicIp) throw new ConfigError('public-ip', `'auto' found no IPv4 address on ${config.wan}; allowed: an IPv4 address`);
  }
  return { publicIp, ifindex };
}

async function run(argv: string[]): Promise<number> {
  const { config } = loadConfig(argv);
  setLogLevel(config.logLevel);
  const { publicIp, ifindex } = resolveWan(config);
  const metrics = new Metrics();
  const pool = new WorkerPool(config, publicIp, ifindex, metrics);
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal: sig });
    await pool.close();
    metrics.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    await metrics.listen(config.metricsListen);
  } catch (e) {
    throw new ConfigError('metrics-listen', `cannot listen on ${config.metricsListen}: ${(e as Error).message}`);
  }
  try {
    await pool.start();
  } catch (e) {
    log('error', 'start-up failed', { err: e as Error });
    await pool.close();
    metrics.close();
    return 1;
  }
  log('info', 'sip-alg running', { wan: config.wan, publicIp, queues: `${config.queues.first}:${config.queues.last}`, ports: config.ports.join(','), metrics: config.metricsListen, failClosed: config.failClosed });
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
    if (e instanceof ConfigError) {
      process.stderr.write(`sip-alg: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`sip-alg: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
