// UDP tunnels (openTunnel, TunnelDevice; src/io/native.ts is the contract)
// with real traffic between two namespaces made here, joined by a veth pair
// (pa0 10.97.0.1/24 in NSA ↔ pb0 10.97.0.2/24 in NSB; nothing in the
// runner's own namespace). This process opens the tunnels inside them
// (opts.netns), builds IPv4/UDP packets in the pool, sends them through one
// tunnel's raw socket and reads them from the other's UDP socket; tcpdump
// in NSB checks what went over the wire. Every socket, watcher, child and
// namespace made here is removed in afterEach/afterAll, also on failure.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { loadNative } from './native.js';
import { TunnelDevice } from './tunnel-device.js';
import { ip, vethPair, waitFor, type Child } from '../lab/ns-kit.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn(
    '\n*** SKIPPED: needs root: src/io/tunnel.test.ts (UDP tunnels between namespaces: 300-packet batches with ' +
      'sender addresses, tcpdump DF/checksum check, EMSGSIZE/EINVAL frames, oversized datagrams, pollStart, ' +
      'TunnelDevice, close of both sockets) did not run ***\n',
  );
}

const native = loadNative();
const pool = new FramePool({ capacity: 2048 });
native.bindPool(pool.buffer, pool.offsets, pool.lengths, pool.slotSize, pool.headroom);

const prefix = `tnl${process.pid % 10000}${Math.random().toString(36).slice(2, 4)}-`;
const NSA = `${prefix}a`;
const NSB = `${prefix}b`;
const IP_A = '10.97.0.1';
const IP_B = '10.97.0.2';

// Cleanup registries: namespaces for the file; the rest per test.
const namespaces = new Set<string>();
const openFds = new Set<number>();
const watchers = new Set<number>();
const devices = new Set<TunnelDevice>();
const children: Child[] = [];
const tmpDirs: string[] = [];

beforeAll(() => {
  if (!isRoot) return;
  vethPair(NSA, NSB, namespaces);
  ip('-n', NSA, 'addr', 'add', `${IP_A}/24`, 'dev', 'pa0');
  ip('-n', NSB, 'addr', 'add', `${IP_B}/24`, 'dev', 'pb0');
  // static neighbours: a burst sent before ARP resolves would mostly be
  // dropped by the kernel's unresolved-neighbour queue
  const macOf = (ns: string, dev: string): string =>
    (JSON.parse(ip('-n', ns, '-j', 'link', 'show', dev)) as Array<{ address: string }>)[0].address;
  ip('-n', NSA, 'neigh', 'replace', IP_B, 'lladdr', macOf(NSB, 'pb0'), 'dev', 'pa0', 'nud', 'permanent');
  ip('-n', NSB, 'neigh', 'replace', IP_A, 'lladdr', macOf(NSA, 'pa0'), 'dev', 'pb0', 'nud', 'permanent');
});

afterEach(() => {
  for (const d of devices) d.close();
  devices.clear();
  for (const id of watchers) {
    try {
      native.pollStop(id);
    } catch {
      /* already stopped */
    }
  }
  watchers.clear();
  for (const fd of openFds) {
    try {
      native.close(fd);
    } catch {
      /* already closed */
    }
  }
  openFds.clear();
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) c.kill('SIGKILL');
  children.length = 0;
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) c.kill('SIGKILL');
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  namespaces.clear();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers (no src/wire on purpose)

function openTunnel(addr: string, port: number, ns: string): { fd: number; port: number } {
  const t = native.openTunnel(addr, port, { netns: ns });
  openFds.add(t.fd);
  return t;
}

function closeTunnel(fd: number): void {
  openFds.delete(fd);
  native.close(fd);
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function ipBytes(s: string): number[] {
  return s.split('.').map(Number);
}

function ipU32(s: string): number {
  return ipBytes(s).reduce((a, x) => a * 256 + x, 0);
}

/** RFC 1071 one's-complement sum over b[start, end). */
function inetChecksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if ((end - start) & 1) sum += b[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface Pkt {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
  df?: boolean;
  /** what to put in the IP header checksum field (the kernel computes it anyway); default 0 */
  ipSum?: number;
  /** the IP total length field (the kernel sets it anyway); default the real length */
  totLen?: number;
  /** UDP checksum: computed (default), 0 (none), or corrupted */
  udpSum?: 'good' | 'none' | 'bad';
}

/** Builds IPv4 + UDP + payload in a fresh pool frame. */
function buildPacket(p: Pkt): number {
  const h = pool.alloc();
  if (h < 0) throw new Error('pool exhausted');
  const o = pool.offsets[h];
  const b = pool.bytes;
  const len = 28 + p.payload.length;
  b.fill(0, o, o + 28);
  b[o] = 0x45;
  const tot = p.totLen ?? len;
  b[o + 2] = tot >> 8;
  b[o + 3] = tot & 0xff;
  b[o + 4] = 0x12;
  b[o + 5] = 0x34; // id
  b[o + 6] = p.df === false ? 0 : 0x40; // DF
  b[o + 8] = 64; // TTL
  b[o + 9] = 17; // UDP
  const sum = p.ipSum ?? 0;
  b[o + 10] = sum >> 8;
  b[o + 11] = sum & 0xff;
  b.set(ipBytes(p.src), o + 12);
  b.set(ipBytes(p.dst), o + 16);
  const u = o + 20;
  const udpLen = 8 + p.payload.length;
  b[u] = p.sport >> 8;
  b[u + 1] = p.sport & 0xff;
  b[u + 2] = p.dport >> 8;
  b[u + 3] = p.dport & 0xff;
  b[u + 4] = udpLen >> 8;
  b[u + 5] = udpLen & 0xff;
  b.set(p.payload, u + 8);
  if ((p.udpSum ?? 'good') !== 'none') {
    const pseudo = new Uint8Array(12 + udpLen);
    pseudo.set(b.subarray(o + 12, o + 20), 0);
    pseudo[9] = 17;
    pseudo[10] = udpLen >> 8;
    pseudo[11] = udpLen & 0xff;
    pseudo.set(b.subarray(u, u + udpLen), 12);
    let c = inetChecksum(pseudo, 0, pseudo.length);
    if (c === 0) c = 0xffff;
    if (p.udpSum === 'bad') c ^= 0x5555;
    b[u + 6] = c >> 8;
    b[u + 7] = c & 0xff;
  }
  pool.lengths[h] = len;
  return h;
}

/** A payload that names its sequence number (2 bytes) and is `len` long (len ≥ 2). */
function payloadOf(tag: number, seq: number, len: number): Uint8Array {
  const p = new Uint8Array(len);
  p[0] = tag;
  p[1] = seq & 0xff;
  for (let i = 2; i < len; i++) p[i] = (seq * 7 + i) & 0xff;
  return p;
}

interface Received {
  payload: Uint8Array;
  sender: string;
  sport: number;
  pad: number;
}

/** One readBatch of up to `max` frames on fd; copies what it got and frees the frames. */
function readSome(fd: number, max: number): Received[] {
  const hs = new Uint32Array(max);
  for (let i = 0; i < max; i++) hs[i] = pool.alloc();
  try {
    const n = native.readBatch(fd, hs, max);
    const out: Received[] = [];
    for (let i = 0; i < n; i++) {
      const h = hs[i];
      const o = pool.offsets[h];
      const b = pool.bytes;
      out.push({
        payload: pool.toBytes(h).slice(),
        sender: Array.from(b.subarray(o - 8, o - 4)).join('.'),
        sport: (b[o - 4] << 8) | b[o - 3],
        pad: (b[o - 2] << 8) | b[o - 1],
      });
    }
    return out;
  } finally {
    for (let i = 0; i < max; i++) pool.free(hs[i]);
  }
}

/** Reads from fd until `n` datagrams came (or `ms` passed); returns them and the size of each readBatch. */
async function readN(fd: number, n: number, ms = 5000): Promise<{ got: Received[]; calls: number[] }> {
  const got: Received[] = [];
  const calls: number[] = [];
  await waitFor(() => {
    const r = readSome(fd, 512);
    if (r.length > 0) calls.push(r.length);
    got.push(...r);
    return got.length >= n;
  }, ms);
  return { got, calls };
}

/** writeBatch of freshly built frames; frees them all afterwards (consumed or not). */
function send(fd: number, frames: number[]): { consumed: number; failed: number } {
  try {
    const r = native.writeBatch(fd, Uint32Array.from(frames), frames.length);
    return { consumed: r & 0xffff, failed: r >>> 16 };
  } finally {
    for (const h of frames) pool.free(h);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- without root

describe('openTunnel (no root needed)', () => {
  it('checks its arguments before opening anything', () => {
    const before = fdCount();
    expect(() => native.openTunnel(7 as unknown as string, 4789)).toThrow(TypeError);
    expect(() => native.openTunnel('10.0.0', 4789)).toThrow(TypeError);
    expect(() => native.openTunnel('0.0.0.0', 70000)).toThrow(RangeError);
    expect(() => native.openTunnel('0.0.0.0', -1)).toThrow(RangeError);
    expect(() => native.openTunnel('0.0.0.0', 1.5)).toThrow(RangeError);
    expect(() => native.openTunnel('0.0.0.0', '1' as unknown as number)).toThrow(TypeError);
    expect(() => native.openTunnel('0.0.0.0', 4789, { netns: '' })).toThrow(RangeError);
    expect(() => native.openTunnel('0.0.0.0', 4789, { netns: 7 as unknown as string })).toThrow(TypeError);
    expect(fdCount()).toBe(before);
  });

  it.skipIf(isRoot)('without CAP_NET_RAW: EPERM at the raw socket, nothing left open', () => {
    const before = fdCount();
    expect(() => native.openTunnel('127.0.0.1', 0)).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect(fdCount()).toBe(before);
  });
});

// ---------------------------------------------------------------- with root

describe.skipIf(!isRoot)('UDP tunnels between two namespaces (root)', () => {
  it('a 300-packet batch from A arrives whole at B: payloads, sender address and port in the headroom', async () => {
    const a = openTunnel('0.0.0.0', 0, NSA);
    const b = openTunnel(IP_B, 4789, NSB);
    expect(a.port).toBeGreaterThan(0); // the kernel's pick
    expect(b.port).toBe(4789);
    const N = 300; // several sendmmsg/recvmmsg chunks of 64
    const frames: number[] = [];
    const payloads: Uint8Array[] = [];
    for (let i = 0; i < N; i++) {
      const payload = payloadOf(1, i, 2 + ((i * 37) % 1400));
      payloads.push(payload);
      // every 50th with source 0.0.0.0: the kernel fills in the route's (no UDP checksum then)
      const noSrc = i % 50 === 49;
      frames.push(buildPacket({ src: noSrc ? '0.0.0.0' : IP_A, dst: IP_B, sport: 40000 + i, dport: 4789, payload, udpSum: noSrc ? 'none' : 'good' }));
    }
    expect(send(a.fd, frames)).toEqual({ consumed: N, failed: 0 });
    await sleep(200); // let them all arrive: one readBatch then takes them all
    const { got, calls } = await readN(b.fd, N);
    expect(got.length).toBe(N);
    expect(calls[0]).toBe(N); // one call, several recvmmsg
    for (let i = 0; i < N; i++) {
      expect(got[i].payload[1]).toBe(i & 0xff);
      expect(Buffer.from(got[i].payload).equals(Buffer.from(payloads[i]))).toBe(true);
      expect(got[i].sender).toBe(IP_A);
      expect(got[i].sport).toBe(40000 + i);
      expect(got[i].pad).toBe(0);
    }
    expect(readSome(b.fd, 16)).toEqual([]); // nothing more waits
    expect(pool.inUse).toBe(0);
  });

  it('tcpdump in B sees the DF bit and a correct IP header checksum the kernel filled in', async () => {
    const a = openTunnel(IP_A, 0, NSA);
    const b = openTunnel(IP_B, 5790, NSB);
    const dir = mkdtempSync(join(tmpdir(), 'usernet-tnl-'));
    tmpDirs.push(dir);
    const file = join(dir, 'cap.pcap');
    const td = spawn('ip', ['netns', 'exec', NSB, 'tcpdump', '--immediate-mode', '-i', 'pb0', '-n', '-U', '-c', '3', '-w', file, 'udp', 'dst', 'port', '5790']);
    children.push(td);
    let tdErr = '';
    td.stderr.on('data', (d: Buffer) => (tdErr += d.toString()));
    const exited = new Promise<number | null>((r) => td.on('exit', (code) => r(code)));
    expect(await waitFor(() => tdErr.includes('listening on'), 10_000)).toBe(true);
    // header checksum field 0, garbage, and a wrong total length: the kernel fixes all of them
    const frames = [
      buildPacket({ src: IP_A, dst: IP_B, sport: 5001, dport: 5790, payload: payloadOf(2, 0, 40), ipSum: 0 }),
      buildPacket({ src: IP_A, dst: IP_B, sport: 5002, dport: 5790, payload: payloadOf(2, 1, 41), ipSum: 0xdead }),
      buildPacket({ src: IP_A, dst: IP_B, sport: 5003, dport: 5790, payload: payloadOf(2, 2, 42), totLen: 9 }),
    ];
    expect(send(a.fd, frames)).toEqual({ consumed: 3, failed: 0 });
    const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout')]);
    expect(code).toBe(0);

    // tcpdump's own reading: DF set, no "bad cksum"
    const v = execFileSync('tcpdump', ['-r', file, '-n', '-v'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    const headers = v.split('\n').filter((l) => l.includes('proto UDP'));
    expect(headers.length).toBe(3);
    for (const l of headers) {
      expect(l).toContain('flags [DF]');
      expect(l).not.toMatch(/bad cksum/);
    }
    expect(v).toMatch(/10\.97\.0\.1\.5003 > 10\.97\.0\.2\.5790: UDP, length 42/);
    // tshark's, where installed (1 = DF, checksum status 1 = good)
    if (spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0) {
      const t = execFileSync('tshark', ['-r', file, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-e', 'ip.flags.df', '-e', 'ip.checksum.status'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString();
      expect(t.trim().split('\n')).toEqual(['1\t1', '1\t1', '1\t1']);
    }
    // and ours, from the pcap bytes: the header sums to zero, DF is the only flag, tot_len is right
    const pcap = readFileSync(file);
    expect(pcap.readUInt32LE(0)).toBe(0xa1b2c3d4);
    let at = 24;
    const lens: number[] = [];
    while (at + 16 <= pcap.length) {
      const incl = pcap.readUInt32LE(at + 8);
      const f = new Uint8Array(pcap.subarray(at + 16, at + 16 + incl));
      expect((f[12] << 8) | f[13]).toBe(0x0800);
      expect(inetChecksum(f, 14, 34)).toBe(0);
      expect(f[20]).toBe(0x40);
      lens.push((f[16] << 8) | f[17]);
      at += 16 + incl;
    }
    expect(lens).toEqual([68, 69, 70]);

    const { got } = await readN(b.fd, 3);
    expect(got.map((r) => r.sport)).toEqual([5001, 5002, 5003]);
  });

  it('writeBatch: too long (EMSGSIZE), unroutable, too short and non-IPv4 frames fail alone; the rest goes out', async () => {
    const a = openTunnel('0.0.0.0', 0, NSA);
    const b = openTunnel(IP_B, 4791, NSB);
    const ok = (seq: number): number => buildPacket({ src: IP_A, dst: IP_B, sport: 6000 + seq, dport: 4791, payload: payloadOf(3, seq, 64) });
    const big = (): number => buildPacket({ src: IP_A, dst: IP_B, sport: 6100, dport: 4791, payload: payloadOf(3, 100, 1572) }); // 1600 > MTU 1500, DF
    const short = pool.fromBytes(Uint8Array.from([0x45, 0, 0, 10, 0, 0, 0x40, 0, 64, 17]));
    const v6 = pool.fromBytes(new Uint8Array(48).fill(0x60, 0, 1));
    const unroutable = buildPacket({ src: IP_A, dst: '192.0.2.1', sport: 6200, dport: 4791, payload: payloadOf(3, 200, 10) });
    const badUdp = buildPacket({ src: IP_A, dst: IP_B, sport: 6300, dport: 4791, payload: payloadOf(3, 300, 10), udpSum: 'bad' });
    const frames = [ok(1), big(), ok(2), short, ok(3), v6, ok(4), unroutable, badUdp, ok(5)];
    // everything consumed; big, short, v6 and unroutable failed; the bad UDP checksum is the receiver's business
    expect(send(a.fd, frames)).toEqual({ consumed: 10, failed: 4 });
    const { got } = await readN(b.fd, 5);
    await sleep(100);
    got.push(...readSome(b.fd, 16));
    expect(got.map((r) => r.payload[1])).toEqual([1, 2, 3, 4, 5]); // the kernel dropped badUdp

    // only the MTU was in the way: with room on both ends the same packet goes through
    ip('-n', NSA, 'link', 'set', 'pa0', 'mtu', '2000');
    ip('-n', NSB, 'link', 'set', 'pb0', 'mtu', '2000');
    try {
      expect(send(a.fd, [big()])).toEqual({ consumed: 1, failed: 0 });
      const r = await readN(b.fd, 1);
      expect(r.got.map((x) => x.payload.length)).toEqual([1572]);
    } finally {
      ip('-n', NSA, 'link', 'set', 'pa0', 'mtu', '1500');
      ip('-n', NSB, 'link', 'set', 'pb0', 'mtu', '1500');
    }
    // a batch of only bad frames makes no syscall and consumes them all
    const onlyBad = [pool.fromBytes(new Uint8Array(19).fill(0x45)), pool.fromBytes(new Uint8Array(0)), pool.fromBytes(new Uint8Array(20).fill(0x44))];
    expect(send(a.fd, onlyBad)).toEqual({ consumed: 3, failed: 3 });
    expect(pool.inUse).toBe(0);
  });

  it('drops and counts a datagram larger than a slot (oversized); the next one arrives', async () => {
    const b = openTunnel(IP_B, 4792, NSB);
    const fd = native.openSocketIn(NSA, 'udp', IP_A, 0);
    const sock = createSocket('udp4');
    try {
      sock.bind({ fd });
      const before = native.stats().oversized;
      const send1 = (size: number): Promise<void> =>
        new Promise((res, rej) => sock.send(Buffer.alloc(size, 0x5a), 4792, IP_B, (e) => (e ? rej(e) : res())));
      await send1(pool.maxFrame + 30); // fragmented by A, reassembled by B: too big for a slot
      await send1(pool.maxFrame); // fits exactly
      await send1(100);
      await sleep(100);
      const { got } = await readN(b.fd, 2);
      expect(got.map((r) => r.payload.length)).toEqual([pool.maxFrame, 100]);
      expect(got.every((r) => r.sender === IP_A && r.sport === sock.address().port)).toBe(true);
      expect(native.stats().oversized - before).toBe(1);
      expect(pool.inUse).toBe(0);
    } finally {
      sock.close();
    }
  });

  it('TunnelDevice: pollStart on the tunnel fd wakes the reader; pull/push both ways; senderOf/senderPortOf', async () => {
    const watchersBefore = native.stats().watchers;
    const portA = new Port(1, 'tunnel:a');
    const portB = new Port(2, 'tunnel:b');
    const devA = new TunnelDevice(native, pool, portA, IP_A, 4793, { netns: NSA });
    devices.add(devA);
    const devB = new TunnelDevice(native, pool, portB, '0.0.0.0', 4794, { netns: NSB });
    devices.add(devB);
    expect(devA.ip).toBe(IP_A);
    expect(devA.udpPort).toBe(4793);
    expect(devB.udpPort).toBe(4794);

    const inB: Array<{ sender: number; sport: number; payload: number[] }> = [];
    let wakeups = 0;
    devB.watch(() => {
      wakeups++;
      devB.pull();
      for (let h = portB.rx.pop(); h >= 0; h = portB.rx.pop()) {
        inB.push({ sender: TunnelDevice.senderOf(pool, h), sport: TunnelDevice.senderPortOf(pool, h), payload: Array.from(pool.toBytes(h)) });
        pool.free(h);
      }
    });
    expect(native.stats().watchers).toBe(watchersBefore + 1);
    for (let i = 0; i < 100; i++) {
      portA.tx.push(buildPacket({ src: IP_A, dst: IP_B, sport: 4793, dport: 4794, payload: payloadOf(4, i, 20 + i) }));
    }
    devA.push();
    expect(portA.counters.txPackets).toBe(100);
    expect(portA.counters.drops).toBe(0);
    expect(portA.tx.empty).toBe(true);
    expect(await waitFor(() => inB.length >= 100, 5000)).toBe(true);
    expect(wakeups).toBeGreaterThan(0);
    expect(inB.map((r) => r.payload[1])).toEqual(Array.from({ length: 100 }, (_, i) => i & 0xff));
    expect(inB.every((r) => r.sender === ipU32(IP_A) && r.sender === 0x0a610001 && r.sport === 4793)).toBe(true);
    expect(portB.counters.rxPackets).toBe(100);
    expect(portB.counters.rxBytes).toBe(Array.from({ length: 100 }, (_, i) => 20 + i).reduce((s, x) => s + x, 0));

    // the other way, read without a watcher: a tunnel receives and sends
    portB.tx.push(buildPacket({ src: IP_B, dst: IP_A, sport: 4794, dport: 4793, payload: payloadOf(5, 1, 33) }));
    devB.push();
    expect(await waitFor(() => devA.pull() > 0, 5000)).toBe(true);
    const h = portA.rx.pop();
    expect(h).toBeGreaterThanOrEqual(0);
    expect(TunnelDevice.senderOf(pool, h)).toBe(ipU32(IP_B));
    expect(TunnelDevice.senderPortOf(pool, h)).toBe(4794);
    expect(Array.from(pool.toBytes(h))).toEqual(Array.from(payloadOf(5, 1, 33)));
    pool.free(h);

    devA.close();
    devB.close();
    devices.clear();
    expect(native.stats().watchers).toBe(watchersBefore);
    expect(pool.inUse).toBe(0);
  });

  it('close() closes both sockets: fd count, /proc/net/{udp,raw} in the namespace, the port binds again', () => {
    const udpHex = (4795).toString(16).toUpperCase().padStart(4, '0');
    const nsFile = (f: string): string => execFileSync('ip', ['netns', 'exec', NSB, 'cat', f]).toString();
    const rawLines = (): string[] => nsFile('/proc/net/raw').split('\n').filter((l) => / 00000000:00FF /.test(l));
    const udpBound = (): boolean => nsFile('/proc/net/udp').split('\n').some((l) => l.includes(`:${udpHex} `));
    // a plain bind (no SO_REUSEADDR) in NSB: EADDRINUSE while the tunnel holds the port
    const bindScript = `
      const s = require('dgram').createSocket('udp4');
      s.on('error', (e) => { console.log(e.code); process.exit(0); });
      s.bind(4795, ${JSON.stringify(IP_B)}, () => { console.log('bound'); s.close(); });
    `;
    const tryBind = (): string =>
      execFileSync('ip', ['netns', 'exec', NSB, process.execPath, '-e', bindScript], { timeout: 10_000 }).toString().trim();

    const before = fdCount();
    const rawBefore = rawLines().length;
    const t = openTunnel(IP_B, 4795, NSB);
    expect(fdCount()).toBe(before + 2);
    expect(rawLines().length).toBe(rawBefore + 1);
    expect(udpBound()).toBe(true);
    expect(tryBind()).toBe('EADDRINUSE');
    const id = native.pollStart(t.fd, () => undefined);
    watchers.add(id);
    closeTunnel(t.fd);
    watchers.delete(id); // close stopped it
    expect(() => native.pollStop(id)).toThrow(RangeError);
    expect(fdCount()).toBe(before);
    expect(rawLines().length).toBe(rawBefore);
    expect(udpBound()).toBe(false);
    expect(tryBind()).toBe('bound');
    // and the addon forgot the pair: a new tunnel on the same port works
    const t2 = openTunnel(IP_B, 4795, NSB);
    expect(fdCount()).toBe(before + 2);
    closeTunnel(t2.fd);
    expect(fdCount()).toBe(before);
  });

  it('open errors are errno-shaped and leave nothing open', () => {
    const before = fdCount();
    const inUse = pool.inUse;
    expect(() => native.openTunnel(IP_B, 4796, { netns: `${prefix}nope` })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => native.openTunnel(IP_B, 4796, { netns: `${prefix}nope` })).toThrow(/open netns '\/run\/netns\//);
    let err: NodeJS.ErrnoException & { address?: string; port?: number } = new Error('none');
    try {
      native.openTunnel('10.97.0.9', 4796, { netns: NSB }); // not an address of NSB
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.code).toBe('EADDRNOTAVAIL');
    expect(err.syscall).toBe(`bind udp 10.97.0.9:4796 in '/run/netns/${NSB}'`);
    expect(err.address).toBe('10.97.0.9');
    expect(err.port).toBe(4796);
    expect(() => new TunnelDevice(native, pool, new Port(3, 'x'), IP_A, 4796, { netns: NSB })).toThrow(
      expect.objectContaining({ code: 'EADDRNOTAVAIL' }),
    );
    expect(fdCount()).toBe(before);
    expect(pool.inUse).toBe(inUse);
  });
});
