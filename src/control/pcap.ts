/**
 * pcap (libpcap classic format, LINKTYPE_ETHERNET) — writer used by the
 * daemon's capture sessions and a small reader for the CLI's text view.
 * Capture is a diagnostic path: it copies each captured frame once.
 *
 * Super-frames (offloads, see src/dataplane/pool.ts) are written as they
 * are, one record of up to 64 KiB, as tcpdump shows them on an interface
 * with TSO/GRO: the IP length covers the whole super-frame and the TCP
 * checksum field holds the partial (pseudo-header) sum. Hence snaplen
 * 262144, tcpdump's own default.
 */
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

export function pcapGlobalHeader(snaplen = 262144): Buffer {
  const b = Buffer.alloc(PCAP_GLOBAL_HEADER_LEN);
  b.writeUInt32LE(0xa1b2c3d4, 0); // magic, microsecond timestamps
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(snaplen, 16);
  b.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  return b;
}

/** One record: header + a copy of bytes[off, off+len). */
export function pcapRecord(bytes: Uint8Array, off: number, len: number, epochMs: number): Buffer {
  const b = Buffer.allocUnsafe(PCAP_RECORD_HEADER_LEN + len);
  const sec = Math.floor(epochMs / 1000);
  const usec = Math.floor((epochMs - sec * 1000) * 1000);
  b.writeUInt32LE(sec, 0);
  b.writeUInt32LE(usec, 4);
  b.writeUInt32LE(len, 8);
  b.writeUInt32LE(len, 12);
  b.set(bytes.subarray(off, off + len), PCAP_RECORD_HEADER_LEN);
  return b;
}

/** Incremental reader: feed chunks, get frames. */
export class PcapReader {
  private buf: Buffer = Buffer.alloc(0);
  private headerSeen = false;
  push(chunk: Buffer): Array<{ ts: number; data: Buffer }> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Array<{ ts: number; data: Buffer }> = [];
    if (!this.headerSeen) {
      if (this.buf.length < PCAP_GLOBAL_HEADER_LEN) return out;
      if (this.buf.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error('not a pcap stream');
      this.buf = this.buf.subarray(PCAP_GLOBAL_HEADER_LEN);
      this.headerSeen = true;
    }
    while (this.buf.length >= PCAP_RECORD_HEADER_LEN) {
      const incl = this.buf.readUInt32LE(8);
      if (this.buf.length < PCAP_RECORD_HEADER_LEN + incl) break;
      const ts = this.buf.readUInt32LE(0) * 1000 + this.buf.readUInt32LE(4) / 1000;
      out.push({ ts, data: this.buf.subarray(PCAP_RECORD_HEADER_LEN, PCAP_RECORD_HEADER_LEN + incl) });
      this.buf = this.buf.subarray(PCAP_RECORD_HEADER_LEN + incl);
    }
    return out;
  }
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');
const mac = (d: Buffer, o: number) => Array.from(d.subarray(o, o + 6), hex2).join(':');
const ip = (d: Buffer, o: number) => `${d[o]}.${d[o + 1]}.${d[o + 2]}.${d[o + 3]}`;

/** One tcpdump-like line for a frame (CLI text view). */
export function describeFrame(d: Buffer): string {
  if (d.length < 14) return `runt frame (${d.length} bytes)`;
  let type = d.readUInt16BE(12);
  let l3 = 14;
  let vlan = '';
  if (type === 0x8100 && d.length >= 18) {
    vlan = `vlan ${d.readUInt16BE(14) & 0xfff} `;
    type = d.readUInt16BE(16);
    l3 = 18;
  }
  const head = `${mac(d, 6)} > ${mac(d, 0)} ${vlan}`;
  if (type === 0x0806 && d.length >= l3 + 28) {
    const op = d.readUInt16BE(l3 + 6);
    if (op === 1) return `${head}ARP who-has ${ip(d, l3 + 24)} tell ${ip(d, l3 + 14)}`;
    if (op === 2) return `${head}ARP reply ${ip(d, l3 + 14)} is-at ${mac(d, l3 + 8)}`;
    return `${head}ARP op ${op}`;
  }
  if (type === 0x0800 && d.length >= l3 + 20) {
    const ihl = (d[l3] & 0xf) * 4;
    const proto = d[l3 + 9];
    const src = ip(d, l3 + 12);
    const dst = ip(d, l3 + 16);
    const l4 = l3 + ihl;
    if (proto === 1 && d.length >= l4 + 8) {
      const t = d[l4];
      const name = t === 8 ? 'echo request' : t === 0 ? 'echo reply' : t === 3 ? 'unreachable' : t === 11 ? 'time exceeded' : `type ${t}`;
      return `${head}IP ${src} > ${dst}: ICMP ${name}${t === 0 || t === 8 ? `, id ${d.readUInt16BE(l4 + 4)}, seq ${d.readUInt16BE(l4 + 6)}` : ''}`;
    }
    if ((proto === 6 || proto === 17) && d.length >= l4 + 4) {
      return `${head}IP ${src}.${d.readUInt16BE(l4)} > ${dst}.${d.readUInt16BE(l4 + 2)}: ${proto === 6 ? 'TCP' : 'UDP'}`;
    }
    return `${head}IP ${src} > ${dst}: proto ${proto}`;
  }
  return `${head}ethertype 0x${type.toString(16).padStart(4, '0')}, length ${d.length}`;
}
