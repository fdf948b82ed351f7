/**
 * The router-pair lab (issue 15): two routers with the project's rules and daemon, keepalived
 * (VRRP virtual addresses on the LAN and WAN sides) and conntrackd (FTFW over a dedicated link,
 * expectations synced, entries written straight into the standby's kernel table), started with
 * configs written here from the same settings as the shipped examples in packaging/router-pair/.
 * close() stops every process and deletes the namespaces; safe to call twice.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAEMON_NODE_FLAGS, Lab, ROOT, SRC_LAB } from './lab';

export type RouterName = 'a' | 'b';

/** The conntrackd settings a sip-alg pair needs (also in packaging/router-pair/conntrackd.conf). */
export function conntrackdConf(o: { self: string; peer: string; iface: string; log: string; lock: string; ctl: string }): string {
  return `# sip-alg router pair: conntrackd (conntrack-tools) in FTFW mode over a dedicated link
Sync {
  Mode FTFW {
    # entries go straight into the standby's kernel table: at a failover the standby already has
    # every NAT binding and media flow (with an external cache, traffic reaching the new master
    # before the notify script commits it creates fresh entries that clash with the synced ones)
    DisableExternalCache On
  }
  UDP {
    IPv4_address ${o.self}
    IPv4_Destination_Address ${o.peer}
    Port 3780
    Interface ${o.iface}
    SndSocketBuffer 1249280
    RcvSocketBuffer 1249280
    Checksum on
  }
  Options {
    # the media pinholes: conntrack expectations of sip-alg's anchors (helper "sip")
    ExpectationSync On
  }
}
General {
  HashSize 8192
  HashLimit 262144
  LogFile ${o.log}
  Syslog off
  LockFile ${o.lock}
  UNIX {
    Path ${o.ctl}
  }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Protocol Accept {
      UDP
      TCP
    }
    # 127.0.0.1 is NOT ignored: sip-alg's anchors are loopback conntracks and must reach the peer
    Address Ignore {
      IPv4_address ${o.self}
      IPv4_address ${o.peer}
    }
  }
}
`;
}

/** keepalived: one sync group of the LAN and WAN virtual addresses, no preemption, the notify script. */
export function keepalivedConf(o: { name: string; priority: number; lan: string; wan: string; lanVip: string; wanVip: string; notify: string }): string {
  return `# sip-alg router pair: keepalived (VRRP) for the LAN gateway address and the WAN public address
global_defs {
  router_id sipalg_${o.name}
  enable_script_security
  script_user root
}
vrrp_sync_group SIPALG {
  group { LAN WAN }
  notify "${o.notify}"
}
vrrp_instance LAN {
  state BACKUP
  interface ${o.lan}
  virtual_router_id 51
  priority ${o.priority}
  advert_int 1
  nopreempt
  virtual_ipaddress { ${o.lanVip} dev ${o.lan} }
}
vrrp_instance WAN {
  state BACKUP
  interface ${o.wan}
  virtual_router_id 52
  priority ${o.priority}
  advert_int 1
  nopreempt
  virtual_ipaddress { ${o.wanVip} dev ${o.wan} }
}
`;
}

/**
 * The notify script: the new master resyncs conntrackd and asks its peer for a bulk update
 * (conntrack-tools primary-backup.sh) and sip-alg takes the peer's calls over; a router that
 * becomes backup leaves its calls to the peer (sip-alg standby: forgotten, kernel entries untouched).
 */
export function notifyScript(o: { conf: string; sipAlg: (cmd: 'takeover' | 'standby') => string; stateLog?: string }): string {
  return `#!/bin/sh
# keepalived notify for a sip-alg router pair: $3 is MASTER, BACKUP or FAULT
CONNTRACKD="conntrackd -C ${o.conf}"
case "$3" in
  MASTER)
    $CONNTRACKD -c   # commit what an external cache would hold (none with DisableExternalCache)
    $CONNTRACKD -f   # flush the caches
    $CONNTRACKD -R   # resync with the kernel table
    $CONNTRACKD -B   # ask the peer for a bulk update
    ${o.sipAlg('takeover')}   # sip-alg: the peer's calls are adopted at their next SIP message
    ;;
  BACKUP|FAULT)
    ${o.sipAlg('standby')}    # sip-alg: the calls are the peer's now; never delete what conntrackd syncs
    $CONNTRACKD -t   # shorten the kernel timeouts of entries this router no longer forwards
    $CONNTRACKD -n   # request a resync from the master
    ;;
esac
${o.stateLog ? `echo "$(date +%s.%N) $3" >> ${o.stateLog}` : ''}
`;
}

export class PairLab {
  readonly lab: Lab;
  private closed = false;
  private readonly daemons = new Map<RouterName, ChildProcess>();

  /** `mode` 'kernel': the kernel's own SIP helper on both routers instead of sip-alg (the same lab, for comparison) */
  constructor(readonly prefix: string, readonly mode: 'alg' | 'kernel' = 'alg') {
    this.lab = new Lab(prefix, 1);
  }

  ns(r: RouterName | 'p1' | 'w' | 'lan' | 'wan'): string {
    return `${this.prefix}-${r}`;
  }

  up(): void {
    this.down();
    const r = spawnSync('bash', [join(SRC_LAB, 'pair.sh'), 'up', this.prefix], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pair lab up failed: ${r.stderr}`);
  }

  down(): void {
    spawnSync('bash', [join(SRC_LAB, 'pair.sh'), 'down', this.prefix], { encoding: 'utf8' });
  }

  /** The namespaces, then router A (until it is master), then B (the standby). */
  async start(): Promise<void> {
    this.up();
    await this.startRouter('a');
    await this.waitMaster('a');
    await this.startRouter('b');
    await new Promise((res) => setTimeout(res, 1500));
  }

  /** conntrackd, keepalived, the rules and the daemon on router `r` (A first: it becomes master); in 'kernel' mode the helper instead of rules and daemon. */
  async startRouter(r: RouterName): Promise<void> {
    const dir = join(this.lab.dir, r);
    mkdirSync(dir, { recursive: true });
    const [self, peer] = r === 'a' ? ['192.168.100.1', '192.168.100.2'] : ['192.168.100.2', '192.168.100.1'];
    const conf = join(dir, 'conntrackd.conf');
    writeFileSync(conf, conntrackdConf({ self, peer, iface: 'sync0', log: join(dir, 'conntrackd.log'), lock: join(dir, 'conntrackd.lock'), ctl: join(dir, 'conntrackd.ctl') }));
    const notify = join(dir, 'notify.sh');
    writeFileSync(notify, notifyScript({ conf, sipAlg: (cmd) => (this.mode === 'kernel' ? 'true' : `${process.execPath} ${join(ROOT, 'bin/sip-alg')} ${cmd} --socket ${join(dir, 'control.sock')}`), stateLog: join(dir, 'vrrp-state.log') }));
    chmodSync(notify, 0o755);
    writeFileSync(join(dir, 'keepalived.conf'), keepalivedConf({ name: r, priority: r === 'a' ? 150 : 100, lan: 'lan0', wan: 'wan0', lanVip: '10.77.0.1/24', wanVip: '203.0.113.1/24', notify }));
    const ns = this.ns(r);
    let x = this.lab.run(ns, 'conntrackd', ['-C', conf, '-d']);
    if (x.code !== 0) throw new Error(`conntrackd on ${r}: ${x.stderr}${x.stdout}`);
    this.lab.start(ns, 'keepalived', ['-n', '-l', '-D', '-f', join(dir, 'keepalived.conf'), '-p', join(dir, 'keepalived.pid'), '-r', join(dir, 'vrrp.pid'), '-c', join(dir, 'checkers.pid')]);
    if (this.mode === 'kernel') {
      for (const port of ['5060', '5080']) {
        x = this.lab.run(ns, 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', port, '-j', 'CT', '--helper', 'sip']);
        if (x.code !== 0) throw new Error(`kernel helper on ${r}: ${x.stderr}`);
      }
      return;
    }
    x = this.lab.run(ns, 'bash', [join(ROOT, 'iptables/sip-alg-rules.sh'), 'install', '--wan', 'wan0', '--queues', '0:0', '--ports', '5060,5080']);
    if (x.code !== 0) throw new Error(`rules on ${r}: ${x.stderr}`);
    await this.startDaemon(r);
  }

  /** sip-alg on router `r` (node-id 1 on A, 2 on B); startRouter starts it, a test may restart it. */
  async startDaemon(r: RouterName): Promise<void> {
    const dir = join(this.lab.dir, r);
    const p = this.lab.start(this.ns(r), process.execPath, [...DAEMON_NODE_FLAGS, join(ROOT, 'bin/sip-alg'), 'run', '--wan', 'wan0', '--public-ip', '203.0.113.1', '--queues', '0:0', '--ports', '5060,5080', '--node-id', r === 'a' ? '1' : '2', '--control-socket', join(dir, 'control.sock'), '--state-dir', join(dir, 'state'), '--teardown-grace-seconds', '2']);
    this.daemons.set(r, p);
    await Lab.waitFor(p, /msg="sip-alg running"/, 15000, `sip-alg on ${r}`);
  }

  /** Kills router `r`'s daemon (SIGKILL: what a crash or an OOM kill does) and waits for it to go. */
  async killDaemon(r: RouterName): Promise<void> {
    const p = this.daemons.get(r);
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((res) => p.once('exit', res));
    p.kill('SIGKILL');
    await gone;
  }

  /** The VRRP states a router went through (its notify script's log). */
  states(r: RouterName): string[] {
    try {
      return readFileSync(join(this.lab.dir, r, 'vrrp-state.log'), 'utf8').trim().split('\n').map((l) => l.split(' ')[1]!).filter(Boolean);
    } catch {
      return [];
    }
  }

  /** Waits until router `r` is VRRP master. */
  async waitMaster(r: RouterName, timeoutMs = 15000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.states(r).at(-1) !== 'MASTER') {
      if (Date.now() > end) throw new Error(`router ${r} not master after ${timeoutMs} ms (states: ${this.states(r).join(',')})`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  conntrack(r: RouterName, args: string[]): string {
    return this.lab.run(this.ns(r), 'conntrack', args).stdout;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const r of ['a', 'b'] as const) {
      const conf = join(this.lab.dir, r, 'conntrackd.conf');
      this.lab.run(this.ns(r), 'conntrackd', ['-C', conf, '-k']);
    }
    await this.lab.close(); // kills what it started; its own namespaces (PREFIX-r, -w, -p1) go with down()
    this.down();
  }
}

/** The shipped examples (packaging/router-pair/) for router A of a pair: eth0 WAN, eth1 LAN, eth2 the sync link. */
export function examplePair(): Record<string, string> {
  const conf = '/etc/conntrackd/conntrackd.conf';
  return {
    'conntrackd.conf': conntrackdConf({ self: '192.168.100.1', peer: '192.168.100.2', iface: 'eth2', log: '/var/log/conntrackd.log', lock: '/var/lock/conntrack.lock', ctl: '/var/run/conntrackd.ctl' }),
    'keepalived.conf': keepalivedConf({ name: 'a', priority: 150, lan: 'eth1', wan: 'eth0', lanVip: '192.168.1.1/24', wanVip: '198.51.100.1/24', notify: '/etc/keepalived/sip-alg-notify.sh' }),
    'sip-alg-notify.sh': notifyScript({ conf, sipAlg: (cmd) => `sip-alg ${cmd}` }),
    // the daemon's config on router A (/etc/sip-alg/sip-alg.json): router B takes node-id 2
    'sip-alg.json': `${JSON.stringify({ 'public-ip': '198.51.100.1', 'node-id': 1, 'metrics-listen': '127.0.0.1:9477' }, null, 2)}\n`,
  };
}
