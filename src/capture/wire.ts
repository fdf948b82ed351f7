/**
 * What crossed an interface, captured with the `cap` package (libpcap), so a capture can show a
 * third view beside "entered the ALG" and "left the ALG": the packet on the wire after the
 * kernel's NAT. Optional: `cap` is an optionalDependency; without it --wire fails with a clear
 * message.
 */
import { ConfigError } from '../errors';
import { PcapWriter } from './pcap';

interface CapModule {
  Cap: new () => {
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    setMinBytes?(n: number): void;
    on(ev: 'packet', fn: (nbytes: number, truncated: boolean) => void): void;
    close(): void;
  };
}

const LINKTYPES: Record<string, number> = { ETHERNET: 1, NULL: 0, IEEE802_11: 105, LINUX_SLL: 113, RAW: 101 };

export function captureInterface(path: string, iface: string, ports: string): { stop: () => number } {
  let mod: CapModule;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('cap') as CapModule;
  } catch (e) {
    throw new ConfigError('wire', `needs the optional 'cap' package (npm install cap; libpcap-dev): ${(e as Error).message}`);
  }
  const portList = ports.split(',').filter((p) => /^\d+$/.test(p));
  if (!portList.length) throw new ConfigError('ports', 'allowed: a comma-separated list of ports');
  const filter = `udp and (${portList.map((p) => `port ${p}`).join(' or ')})`;
  const c = new mod.Cap();
  const buf = Buffer.alloc(65535);
  let link: string;
  try {
    link = c.open(iface, filter, 10 * 1024 * 1024, buf);
  } catch (e) {
    throw new ConfigError('iface', `cannot capture on ${iface}: ${(e as Error).message}`);
  }
  c.setMinBytes?.(0);
  const w = new PcapWriter(path, LINKTYPES[link] ?? 1);
  c.on('packet', (nbytes) => w.write(Date.now() * 1000, buf.subarray(0, nbytes)));
  return {
    stop: () => {
      c.close();
      w.close();
      return w.count;
    },
  };
}
