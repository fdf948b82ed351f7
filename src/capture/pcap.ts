/**
 * pcap files (the libpcap format Wireshark and tshark read: https://www.tcpdump.org/manpages/pcap-savefile.5.txt)
 * of raw IP packets (LINKTYPE_RAW = 101), as the ALG saw them. Written by hand: 40 lines, and the
 * ALG already holds each packet as a Buffer; a capture library would have to re-capture them.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export const LINKTYPE_RAW = 101;

export function pcapHeader(snaplen = 65535, linktype = LINKTYPE_RAW): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0); // microsecond timestamps, little endian
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeInt32LE(0, 8);
  h.writeUInt32LE(0, 12);
  h.writeUInt32LE(snaplen, 16);
  h.writeUInt32LE(linktype, 20);
  return h;
}

/** One record: `tsUs` microseconds since the epoch. */
export function pcapRecord(tsUs: number, packet: Uint8Array): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(Math.floor(tsUs / 1e6), 0);
  h.writeUInt32LE(Math.floor(tsUs % 1e6), 4);
  h.writeUInt32LE(packet.length, 8);
  h.writeUInt32LE(packet.length, 12);
  return Buffer.concat([h, packet]);
}

export class PcapWriter {
  private fd: number | undefined;
  count = 0;

  constructor(readonly path: string, linktype = LINKTYPE_RAW) {
    this.fd = openSync(path, 'w', 0o600);
    writeSync(this.fd, pcapHeader(65535, linktype));
  }

  write(tsUs: number, packet: Uint8Array): void {
    if (this.fd === undefined) return;
    writeSync(this.fd, pcapRecord(tsUs, packet));
    this.count++;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
