// Real-traffic tests of the native addon (src/io/native.ts is the contract).
//
// The root-only part makes one network namespace with a unique name, moves
// TAP devices into it and talks to the namespace's own stack through them:
// ARP and ICMP answered by hand-built frames, ping as the judge. Nothing is
// routed to, or captured on, a real interface. Everything made here is
// removed in afterAll, also when a test fails. The AF_PACKET part (further
// down) makes two more namespaces joined by a veth pair.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FramePool } from '../dataplane/pool.js';
import { loadNative } from './native.js';
import { ip, nsRunner, waitFor, vethPair } from '../lab/ns-kit.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn(
    '\n*** SKIPPED: needs root: src/io/native.test.ts TAP/namespace tests (ARP+ICMP via ping, ' +
      'writeBatch on TAPs, EBADF/EBADFD, oversized frames) and AF_PACKET tests (veth in namespaces: ping, ' +
      'recvmmsg/sendmmsg batches, outgoing filter, VLAN/checksum restore, MSG_TRUNC, netns option, link down/up) did not run ***\n',
  );
}

const native = loadNative();
const addonPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'usernet.node');

// Unique per run; interface names are prefix + one letter (≤ 15 bytes).
const prefix = `unt${process.pid % 10000}${Math.random().toString(36).slice(2, 4)}`;
const NS = `${prefix}ns`;

const pool = new FramePool({ capacity: 512 });
native.bindPool(pool.buffer, pool.offsets, pool.lengths, pool.slotSize, pool.headroom);

// Cleanup registry.
const openFds = new Set<number>();
const watchers = new Set<number>();
const namespaces = new Set<string>();
const children: Array<ReturnType<typeof spawn>> = [];
const tmpDirs: string[] = [];


function openTap(suffix: string): { fd: number; name: string } {
  const t = native.openTap(`${prefix}${suffix}`);
  openFds.add(t.fd);
  return t;
}

function closeFd(fd: number): void {
  openFds.delete(fd);
  native.close(fd);
}

function pollStart(fd: number, cb: () => void): number {
  const id = native.pollStart(fd, cb);
  watchers.add(id);
  return id;
}

function pollStop(id: number): void {
  if (watchers.delete(id)) native.pollStop(id);
}

/** Opens a TAP, moves it into namespace `ns`, brings it up there. */
function tapInNs(suffix: string, ns: string, addr?: string): { fd: number; name: string; mac: number[] } {
  const t = openTap(suffix);
  const mac = parseMac(readFileSync(`/sys/class/net/${t.name}/address`, 'utf8').trim());
  ip('link', 'set', t.name, 'netns', ns);
  if (addr) ip('-n', ns, 'addr', 'add', addr, 'dev', t.name);
  ip('-n', ns, 'link', 'set', t.name, 'up');
  return { ...t, mac };
}


// ---------------------------------------------------------------- frame helpers (no src/wire on purpose)

function parseMac(s: string): number[] {
  return s.split(':').map((x) => parseInt(x, 16));
}

function macAt(b: Uint8Array, o: number): string {
  return Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

function ipAt(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** RFC 1071 one's-complement sum over b[start, end). */
function inetChecksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if ((end - start) & 1) sum += b[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const PEER_MAC = [0x02, 0x00, 0x5e, 0x10, 0x99, 0x01];
const PEER_IP = [10, 99, 0, 1];

function arpReply(req: Uint8Array): Uint8Array {
  const f = new Uint8Array(42);
  f.set(req.subarray(6, 12), 0); // eth dst = requester
  f.set(PEER_MAC, 6);
  f.set([0x08, 0x06], 12);
  f.set([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02], 14); // Ethernet/IPv4, op=reply
  f.set(PEER_MAC, 22); // sha
  f.set(PEER_IP, 28); // spa
  f.set(req.subarray(22, 28), 32); // tha = requester sha
  f.set(req.subarray(28, 32), 38); // tpa = requester spa
  return f;
}

function echoReply(req: Uint8Array): Uint8Array {
  const f = req.slice();
  f.set(req.subarray(6, 12), 0);
  f.set(PEER_MAC, 6);
  const ihl = (f[14] & 0x0f) * 4;
  const ipEnd = 14 + ((f[16] << 8) | f[17]);
  f.set(req.subarray(30, 34), 26); // src = old dst
  f.set(req.subarray(26, 30), 30); // dst = old src
  f[22] = 64; // TTL
  f[24] = f[25] = 0;
  const ipSum = inetChecksum(f, 14, 14 + ihl);
  f[24] = ipSum >> 8;
  f[25] = ipSum & 0xff;
  const icmp = 14 + ihl;
  f[icmp] = 0; // echo reply
  f[icmp + 2] = f[icmp + 3] = 0;
  const icmpSum = inetChecksum(f, icmp, ipEnd);
  f[icmp + 2] = icmpSum >> 8;
  f[icmp + 3] = icmpSum & 0xff;
  return f.subarray(0, ipEnd);
}

/** A minimal frame to broadcast with the local-experimental EtherType 0x88b5. */
function junkFrame(len: number): number {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, Math.min(6, len));
  if (len >= 14) {
    f.set(PEER_MAC, 6);
    f.set([0x88, 0xb5], 12);
  }
  return pool.fromBytes(f);
}

/** Writes frames (cold path), returning writeBatch's raw result; frees them. */
function writeFrames(fd: number, frames: number[]): number {
  const hs = Uint32Array.from(frames);
  const r = native.writeBatch(fd, hs, hs.length);
  for (const h of frames) pool.free(h);
  return r;
}

// ---------------------------------------------------------------- setup / teardown

beforeAll(() => {
  if (!isRoot) return;
  ip('netns', 'add', NS);
  namespaces.add(NS);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
});

afterAll(() => {
  for (const id of watchers) {
    try {
      native.pollStop(id);
    } catch {
      /* already stopped */
    }
  }
  watchers.clear();
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
  for (const fd of openFds) {
    try {
      native.close(fd);
    } catch {
      /* already closed */
    }
  }
  openFds.clear();
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests without root

describe('native addon: arguments and pipes (no root needed)', () => {
  it('rejects out-of-range handles and unknown handle ids before any I/O', () => {
    const hs = new Uint32Array([pool.capacity]);
    expect(() => native.readBatch(-1, hs, 1)).toThrow(RangeError);
    expect(() => native.writeBatch(-1, hs, 1)).toThrow(RangeError);
    expect(() => native.readBatch(-1, new Uint32Array(2), 3)).toThrow(RangeError);
    expect(() => native.readBatch(-1, 987654, 1)).toThrow(RangeError);
    expect(() => native.readBatch(-1, new Int32Array(1) as unknown as Uint32Array, 1)).toThrow(TypeError);
  });

  it('openPacket checks its arguments', () => {
    expect(() => native.openPacket('')).toThrow(RangeError);
    expect(() => native.openPacket('x'.repeat(16))).toThrow(RangeError);
    expect(() => native.openPacket(7 as unknown as string)).toThrow(TypeError);
    expect(() => native.openPacket('nosuch0', { netns: 7 as unknown as string })).toThrow(TypeError);
  });

  it('bindHandles ids work like the array and can be released', () => {
    const hs = new Uint32Array(4);
    const id = native.bindHandles(hs);
    expect(id).toBeGreaterThan(0);
    expect(native.readBatch(-1, id, 0)).toBe(0);
    // fd −1 with one frame: EBADF through the bound id path
    expect(() => native.readBatch(-1, id, 1)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    native.unbindHandles(id);
    expect(() => native.readBatch(-1, id, 0)).toThrow(RangeError);
  });

  it('writeBatch stops at EAGAIN and leaves the rest with the caller (full FIFO)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-fifo-'));
    tmpDirs.push(dir);
    const path = join(dir, 'f');
    execFileSync('mkfifo', [path]);
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      const frames: number[] = [];
      for (let i = 0; i < 100; i++) frames.push(junkFrame(1500));
      const hs = Uint32Array.from(frames);
      const r = native.writeBatch(fd, hs, 100);
      const consumed = r & 0xffff;
      const failed = r >>> 16;
      expect(failed).toBe(0);
      expect(consumed).toBeGreaterThan(0);
      expect(consumed).toBeLessThan(100); // a pipe holds 64 KiB
      // the rest stays with us: the pipe is full, so the next call takes none
      expect(native.writeBatch(fd, hs.subarray(consumed), 100 - consumed)).toBe(0);
      for (const h of frames) pool.free(h);
    } finally {
      closeSync(fd);
    }
  });

  it('pollStart: cb runs when readable, cb exceptions reach uncaughtException, pollStop lets the process exit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-poll-'));
    tmpDirs.push(dir);
    const path = join(dir, 'f');
    execFileSync('mkfifo', [path]);
    const script = `
      const fs = require('fs');
      const a = require(${JSON.stringify(addonPath)});
      const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      process.on('uncaughtException', (e) => {
        console.log('uncaught:' + e.message);
        a.pollStop(id);
        // nothing else is pending: the process must now exit by itself
      });
      let calls = 0;
      const id = a.pollStart(fd, () => {
        calls++;
        console.log('cb:' + calls);
        throw new Error('boom');
      });
      fs.writeSync(fd, 'x');
    `;
    const r = spawnSync(process.execPath, ['-e', script], { timeout: 10_000, encoding: 'utf8' });
    expect(r.error).toBeUndefined(); // no timeout: nothing kept the loop alive
    expect(r.stdout).toContain('cb:1');
    expect(r.stdout).toContain('uncaught:boom');
    expect(r.status).toBe(0);
  });
});

// ---------------------------------------------------------------- tests with TAP devices

describe.skipIf(!isRoot)('native addon: TAP devices (root)', () => {
  it('answers ARP and ICMP echo from a namespace: ping sees 0% loss', async () => {
    const tap = tapInNs('p', NS, '10.99.0.2/24');
    const tapMac = macAt(Uint8Array.from(tap.mac), 0);
    const events: string[] = [];
    const arpRequests: Array<{ src: string; spa: string; tpa: string }> = [];
    const echoRequests: Array<{ dst: string; src: string; ip: string }> = [];
    const writeResults: number[] = [];
    const errors: unknown[] = [];

    const rx = new Uint32Array(32);
    const rxId = native.bindHandles(rx);
    const b = pool.bytes;

    const handleFrame = (h: number): void => {
      const o = pool.offsets[h];
      const len = pool.lengths[h];
      const type = (b[o + 12] << 8) | b[o + 13];
      if (type === 0x0806 && len >= 42 && b[o + 21] === 1) {
        const req = { src: macAt(b, o + 6), spa: ipAt(b, o + 28), tpa: ipAt(b, o + 38) };
        arpRequests.push(req);
        events.push('arp-request');
        if (req.tpa === '10.99.0.1') {
          writeResults.push(writeFrames(tap.fd, [pool.fromBytes(arpReply(pool.toBytes(h)))]));
          events.push('arp-reply');
        }
      } else if (type === 0x0800 && len >= 42 && b[o + 23] === 1 && b[o + 14 + (b[o + 14] & 15) * 4] === 8) {
        echoRequests.push({ dst: macAt(b, o), src: macAt(b, o + 6), ip: ipAt(b, o + 30) });
        events.push('echo-request');
        writeResults.push(writeFrames(tap.fd, [pool.fromBytes(echoReply(pool.toBytes(h)))]));
      }
      // anything else (IPv6 router solicitations, MLD) is ignored
    };

    const onReadable = (): void => {
      for (;;) {
        let k = 0;
        while (k < rx.length) {
          const h = pool.alloc();
          if (h < 0) break;
          rx[k++] = h;
        }
        let n = 0;
        try {
          n = native.readBatch(tap.fd, rxId, k);
          for (let i = 0; i < n; i++) handleFrame(rx[i]);
        } catch (e) {
          errors.push(e);
        }
        for (let i = 0; i < k; i++) pool.free(rx[i]);
        if (n < k || errors.length > 0) return;
      }
    };

    const watcher = pollStart(tap.fd, onReadable);
    try {
      const ping = spawn('ip', ['netns', 'exec', NS, 'ping', '-n', '-c', '3', '-W', '1', '10.99.0.1']);
      children.push(ping);
      let out = '';
      ping.stdout.on('data', (d: Buffer) => (out += d.toString()));
      ping.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(-1), 20_000);
        ping.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });

      expect(errors).toEqual([]);
      // the namespace asked for 10.99.0.1 from the TAP's own MAC
      expect(arpRequests.length).toBeGreaterThan(0);
      for (const r of arpRequests) {
        expect(r.src).toBe(tapMac);
        expect(r.spa).toBe('10.99.0.2');
      }
      expect(arpRequests.some((r) => r.tpa === '10.99.0.1')).toBe(true);
      // after our ARP reply it sent echo requests to the MAC we announced
      expect(events.indexOf('arp-reply')).toBeGreaterThanOrEqual(0);
      expect(events.indexOf('echo-request')).toBeGreaterThan(events.indexOf('arp-reply'));
      expect(echoRequests.length).toBeGreaterThanOrEqual(3);
      for (const e of echoRequests) {
        expect(e.dst).toBe(macAt(Uint8Array.from(PEER_MAC), 0));
        expect(e.src).toBe(tapMac);
        expect(e.ip).toBe('10.99.0.1');
      }
      // every write: one frame consumed, no hard error
      expect(writeResults.every((r) => r === 1)).toBe(true);
      expect(out).toMatch(/3 packets transmitted, 3 received, 0% packet loss/);
      expect(code).toBe(0);
      expect(pool.inUse).toBe(0);
    } finally {
      pollStop(watcher);
      native.unbindHandles(rxId);
    }
  });

  it('readBatch returns 0 when nothing is waiting', () => {
    const tap = openTap('e'); // down: nothing will ever arrive
    const h = pool.alloc();
    pool.lengths[h] = 77;
    try {
      expect(native.readBatch(tap.fd, Uint32Array.of(h), 1)).toBe(0);
      expect(pool.lengths[h]).toBe(77); // untouched
    } finally {
      pool.free(h);
      closeFd(tap.fd);
    }
  });

  it('readBatch on a closed fd throws an Error with code EBADF', () => {
    const tap = openTap('c');
    closeFd(tap.fd);
    const h = pool.alloc();
    try {
      let caught: unknown;
      try {
        native.readBatch(tap.fd, Uint32Array.of(h), 1);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(Error);
      expect((caught as NodeJS.ErrnoException).code).toBe('EBADF');
      expect((caught as Error).message).toMatch(/Bad file descriptor/);
    } finally {
      pool.free(h);
    }
  });

  it('writeBatch returns consumed + 65536 * failed', () => {
    const tap = tapInNs('w', NS);
    // ok, too short for Ethernet (EINVAL), ok
    expect(writeFrames(tap.fd, [junkFrame(60), junkFrame(10), junkFrame(60)])).toBe(3 + 65536 * 1);
    expect(writeFrames(tap.fd, [junkFrame(60), junkFrame(61)])).toBe(2);
    // link down: the TAP refuses frames with EIO
    ip('-n', NS, 'link', 'set', tap.name, 'down');
    expect(writeFrames(tap.fd, [junkFrame(60), junkFrame(60)])).toBe(2 + 65536 * 2);
    closeFd(tap.fd);
    // closed fd: every frame is a hard error, all consumed
    expect(writeFrames(tap.fd, [junkFrame(60), junkFrame(60), junkFrame(60)])).toBe(3 + 65536 * 3);
    expect(pool.inUse).toBe(0);
  });

  it('drops and counts frames larger than a slot instead of truncating them', () => {
    const tap = tapInNs('o', NS, '10.99.1.2/24');
    ip('-n', NS, 'link', 'set', tap.name, 'mtu', '4000');
    ip('-n', NS, 'neigh', 'replace', '10.99.1.1', 'lladdr', '02:00:5e:10:99:01', 'dev', tap.name);
    const before = native.stats().oversized;
    // 3000 + 28 + 14 bytes > maxFrame (1920), then a small one
    spawnSync('ip', ['netns', 'exec', NS, 'ping', '-n', '-c', '1', '-W', '0.2', '-s', '3000', '10.99.1.1'], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'exec', NS, 'ping', '-n', '-c', '1', '-W', '0.2', '-s', '100', '10.99.1.1'], { stdio: 'ignore' });
    const rx = new Uint32Array(16);
    for (let i = 0; i < rx.length; i++) rx[i] = pool.alloc();
    try {
      const lens: number[] = [];
      let n: number;
      while ((n = native.readBatch(tap.fd, rx, rx.length)) > 0) {
        for (let i = 0; i < n; i++) lens.push(pool.lengths[rx[i]]);
      }
      expect(native.stats().oversized - before).toBe(1);
      expect(lens.every((l) => l <= pool.maxFrame)).toBe(true);
      expect(lens).toContain(14 + 20 + 8 + 100); // the small echo request still arrives
      expect(lens).not.toContain(pool.maxFrame); // nothing truncated to slot size
    } finally {
      for (const h of rx) pool.free(h);
      closeFd(tap.fd);
    }
  });

  it('deleting the namespace removes the TAP: poll fires and readBatch throws EBADFD', async () => {
    const ns2 = `${prefix}gone`;
    ip('netns', 'add', ns2);
    namespaces.add(ns2);
    const tap = tapInNs('g', ns2);
    const codes: string[] = [];
    const h = pool.alloc();
    const hs = Uint32Array.of(h);
    let watcher = 0;
    watcher = pollStart(tap.fd, () => {
      try {
        native.readBatch(tap.fd, hs, 1); // drain whatever the namespace sent (IPv6 noise)
      } catch (e) {
        codes.push(String((e as NodeJS.ErrnoException).code));
        pollStop(watcher); // allowed from inside cb
      }
    });
    try {
      ip('netns', 'del', ns2);
      namespaces.delete(ns2);
      // the kernel tears the namespace down asynchronously
      expect(await waitFor(() => codes.length > 0, 10_000)).toBe(true);
      expect(codes).toEqual(['EBADFD']);
      expect(native.stats().watchers).toBe(0);
    } finally {
      pollStop(watcher);
      pool.free(h);
      closeFd(tap.fd);
    }
  });

  it('openTap lets the kernel pick a name and opens IFF_VNET_HDR devices', () => {
    const auto = native.openTap('');
    openFds.add(auto.fd);
    const vnet = native.openTap(`${prefix}v`, { vnetHdr: true });
    openFds.add(vnet.fd);
    try {
      expect(auto.name).toMatch(/^tap\d+$/);
      expect(vnet.name).toBe(`${prefix}v`);
      expect(ip('-d', 'link', 'show', vnet.name)).toMatch(/vnet_hdr on/);
      expect(ip('-d', 'link', 'show', auto.name)).toMatch(/vnet_hdr off/);
      expect(() => native.openTap('x'.repeat(16))).toThrow(RangeError);
    } finally {
      closeFd(auto.fd);
      closeFd(vnet.fd);
    }
  });
});

// ---------------------------------------------------------------- AF_PACKET sockets
//
// Two namespaces made here, joined by a veth pair (pa0 in NSA, pb0 in NSB):
// nothing is created in the test runner's own namespace. Packet sockets are
// opened by small node children started with `ip netns exec` (an "agent"
// speaking JSON lines on stdin/stdout, driving the addon in its namespace),
// and once from this process with openPacket's netns option.

const NSA = `${prefix}pa`;
const NSB = `${prefix}pb`;
const PACKET_PEER_IP = '10.98.0.1'; // answered by the agent in NSA with PEER_MAC
const MARKER_TYPE = 0x88b5;

// The agent: plain JS (no TS, no src imports) so `node` runs it as is.
const AGENT_SOURCE = `
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import dgram from 'node:dgram';
const require = createRequire(import.meta.url);
const a = require(process.env.USERNET_ADDON);
const SLOT = 2048, HEAD = 128, CAP = 1024;
const buffer = new ArrayBuffer(CAP * SLOT);
const bytes = new Uint8Array(buffer);
const offsets = new Uint32Array(CAP);
const lengths = new Uint32Array(CAP);
a.bindPool(buffer, offsets, lengths, SLOT, HEAD);
const freeList = [];
for (let i = CAP - 1; i >= 0; i--) freeList.push(i);
function alloc() { const h = freeList.pop(); offsets[h] = h * SLOT + HEAD; lengths[h] = 0; return h; }
function free(h) { freeList.push(h); }
function hexOf(h) { return Buffer.from(buffer, offsets[h], lengths[h]).toString('hex'); }
function fromHex(s) { const h = alloc(); const b = Buffer.from(s, 'hex'); bytes.set(b, offsets[h]); lengths[h] = b.length; return h; }

function readOnce(fd, max) {
  const hs = new Uint32Array(max);
  for (let i = 0; i < max; i++) hs[i] = alloc();
  try {
    const n = a.readBatch(fd, hs, max);
    const frames = [];
    for (let i = 0; i < n; i++) frames.push(hexOf(hs[i]));
    return { n, frames };
  } finally {
    for (let i = max - 1; i >= 0; i--) free(hs[i]);
  }
}

function sum16(b, start, end) {
  let s = 0;
  for (let i = start; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if ((end - start) & 1) s += b[end - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

// ARP + ICMP echo responder for one IP, with one MAC, through readBatch/writeBatch.
let responder = null;
function respond({ fd, mac, ip }) {
  const MAC = Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
  const IP = Buffer.from(ip.split('.').map(Number));
  const rx = new Uint32Array(64);
  const rxId = a.bindHandles(rx);
  const out = new Uint32Array(64);
  const st = { batches: [], arp: 0, echo: 0, writes: [], errors: [] };
  const onReadable = () => {
    for (;;) {
      for (let i = 0; i < rx.length; i++) rx[i] = alloc();
      let n = 0, k = 0;
      try {
        n = a.readBatch(fd, rxId, rx.length);
      } catch (e) {
        st.errors.push(String(e.code));
      }
      if (n > 0) st.batches.push(n);
      for (let i = 0; i < n; i++) {
        const h = rx[i];
        const o = offsets[h];
        const len = lengths[h];
        const type = (bytes[o + 12] << 8) | bytes[o + 13];
        if (type === 0x0806 && len >= 42 && bytes[o + 21] === 1 && Buffer.from(buffer, o + 38, 4).equals(IP)) {
          st.arp++;
          const r = alloc();
          const f = Buffer.from(buffer, offsets[r], 42);
          f.set(bytes.subarray(o + 6, o + 12), 0);
          f.set(MAC, 6);
          f.set([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02], 12);
          f.set(MAC, 22);
          f.set(IP, 28);
          f.set(bytes.subarray(o + 22, o + 32), 32);
          lengths[r] = 42;
          out[k++] = r;
        } else if (type === 0x0800 && len >= 42 && bytes[o + 23] === 1 && Buffer.from(buffer, o + 30, 4).equals(IP)) {
          const ihl = (bytes[o + 14] & 15) * 4;
          const ipEnd = 14 + ((bytes[o + 16] << 8) | bytes[o + 17]);
          const icmp = 14 + ihl;
          if (bytes[o + icmp] !== 8 || ipEnd > len) continue;
          st.echo++;
          const r = alloc();
          const ro = offsets[r];
          bytes.copyWithin(ro, o, o + ipEnd);
          const f = Buffer.from(buffer, ro, ipEnd);
          f.set(bytes.subarray(o + 6, o + 12), 0);
          f.set(MAC, 6);
          f.set(bytes.subarray(o + 30, o + 34), 26);
          f.set(bytes.subarray(o + 26, o + 30), 30);
          f[22] = 64;
          f[24] = f[25] = 0;
          const ipSum = sum16(f, 14, 14 + ihl);
          f[24] = ipSum >> 8; f[25] = ipSum & 0xff;
          f[icmp] = 0;
          f[icmp + 2] = f[icmp + 3] = 0;
          const icmpSum = sum16(f, icmp, ipEnd);
          f[icmp + 2] = icmpSum >> 8; f[icmp + 3] = icmpSum & 0xff;
          lengths[r] = ipEnd;
          out[k++] = r;
        }
      }
      for (let i = rx.length - 1; i >= 0; i--) free(rx[i]);
      if (k > 0) {
        st.writes.push({ r: a.writeBatch(fd, out, k), k });
        for (let i = 0; i < k; i++) free(out[i]);
      }
      if (n < rx.length) return;
    }
  };
  const watcher = a.pollStart(fd, onReadable);
  responder = { st, stop() { a.pollStop(watcher); a.unbindHandles(rxId); } };
  return true;
}

const cmds = {
  open: ({ ifname, opts }) => a.openPacket(ifname, opts),
  close: ({ fd }) => a.close(fd),
  send: ({ fd, frames }) => {
    const hs = Uint32Array.from(frames.map(fromHex));
    const r = a.writeBatch(fd, hs, hs.length);
    for (const h of hs) free(h);
    return r;
  },
  read: ({ fd, max }) => readOnce(fd, max),
  drain: ({ fd }) => {
    const calls = [], frames = [];
    for (;;) {
      const r = readOnce(fd, 64);
      if (r.n === 0) return { calls, frames };
      calls.push(r.n);
      frames.push(...r.frames);
    }
  },
  waitReadable: ({ fd, ms }) => new Promise((resolve) => {
    let id = 0;
    const t = setTimeout(() => { a.pollStop(id); resolve(false); }, ms);
    id = a.pollStart(fd, () => { clearTimeout(t); a.pollStop(id); resolve(true); });
  }),
  respond,
  respondStop: () => { const st = responder.st; responder.stop(); responder = null; return st; },
  udp: ({ host, port, payload }) => new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.send(Buffer.from(payload, 'hex'), port, host, (err) => { s.close(); if (err) reject(err); else resolve(true); });
  }),
  stats: () => a.stats(),
  freeFrames: () => freeList.length,
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const { id, cmd, args } = JSON.parse(line);
  let msg;
  try {
    msg = { id, ok: true, result: await cmds[cmd](args ?? {}) };
  } catch (e) {
    msg = { id, ok: false, error: { message: String(e && e.message), code: e && e.code } };
  }
  process.stdout.write(JSON.stringify(msg) + '\\n');
});
rl.on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ id: 0, ok: true, result: 'ready' }) + '\\n');
`;

interface AgentError extends Error {
  code?: string;
}

/** A node child running AGENT_SOURCE inside namespace `ns`. */
class Agent {
  private readonly proc: ReturnType<typeof spawn>;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private buf = '';
  stderr = '';
  readonly ready: Promise<unknown>;

  constructor(ns: string, script: string) {
    this.proc = spawn('ip', ['netns', 'exec', ns, process.execPath, script], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, USERNET_ADDON: addonPath },
    });
    children.push(this.proc);
    this.ready = new Promise((resolve, reject) => this.waiting.set(0, { resolve, reject }));
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const msg = JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: { message: string; code?: string } };
        const w = this.waiting.get(msg.id);
        if (!w) continue;
        this.waiting.delete(msg.id);
        if (msg.ok) w.resolve(msg.result);
        else w.reject(Object.assign(new Error(msg.error!.message), { code: msg.error!.code }) as AgentError);
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`agent in ${ns} exited (${code}): ${this.stderr}`));
      this.waiting.clear();
    });
  }

  call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    const p = new Promise<T>((resolve, reject) => this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    this.proc.stdin!.write(JSON.stringify({ id, cmd, args }) + '\n');
    return p;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await done;
    clearTimeout(t);
  }
}

function macString(mac: number): string {
  return Array.from({ length: 6 }, (_, i) => (Math.floor(mac / 2 ** (8 * (5 - i))) % 256).toString(16).padStart(2, '0')).join(':');
}

/** A 0x88b5 frame from PEER_MAC to `dst` carrying a tag and a sequence number, as hex. */
function markerHex(dst: string, tag: number, seq: number, len = 64): string {
  const f = new Uint8Array(len);
  f.set(parseMac(dst), 0);
  f.set(PEER_MAC, 6);
  f.set([MARKER_TYPE >> 8, MARKER_TYPE & 0xff, tag, seq >> 8, seq & 0xff], 12);
  return Buffer.from(f).toString('hex');
}

function markerSeqs(frames: string[], tag: number): number[] {
  return frames
    .map((h) => Buffer.from(h, 'hex'))
    .filter((b) => b.length >= 17 && b.readUInt16BE(12) === MARKER_TYPE && b[14] === tag)
    .map((b) => b.readUInt16BE(15));
}

function linkInfo(ns: string, ifname: string): { ifindex: number; address: string } {
  const j = JSON.parse(ip('-n', ns, '-j', 'link', 'show', ifname)) as Array<{ ifindex: number; address: string }>;
  return j[0];
}

/** ip-netns exec, collecting output (children are stopped in afterAll). */
const nsRun = nsRunner(children, 20_000);

describe.skipIf(!isRoot)('native addon: AF_PACKET sockets (root)', () => {
  let agentA: Agent; // in NSA: packet sockets on pa0
  let agentB: Agent; // in NSB: packet sockets on pb0, the peer's stack
  let fdA = -1;
  let fdB = -1;
  let macA = '';
  let macB = '';

  beforeAll(async () => {
    vethPair(NSA, NSB, namespaces);
    ip('-n', NSB, 'addr', 'add', '10.98.0.2/24', 'dev', 'pb0');
    const dir = mkdtempSync(join(tmpdir(), 'usernet-agent-'));
    tmpDirs.push(dir);
    const script = join(dir, 'agent.mjs');
    writeFileSync(script, AGENT_SOURCE);
    agentA = new Agent(NSA, script);
    agentB = new Agent(NSB, script);
    await Promise.all([agentA.ready, agentB.ready]);
    const a = await agentA.call<{ fd: number; ifindex: number; mac: number }>('open', { ifname: 'pa0' });
    const b = await agentB.call<{ fd: number; ifindex: number; mac: number }>('open', { ifname: 'pb0' });
    fdA = a.fd;
    fdB = b.fd;
    macA = macString(a.mac);
    macB = macString(b.mac);
    // the reported ifindex and MAC are the interface's
    expect(a.ifindex).toBe(linkInfo(NSA, 'pa0').ifindex);
    expect(macA).toBe(linkInfo(NSA, 'pa0').address);
    expect(b.ifindex).toBe(linkInfo(NSB, 'pb0').ifindex);
    expect(macB).toBe(linkInfo(NSB, 'pb0').address);
  });

  afterAll(async () => {
    await Promise.all([agentA?.stop(), agentB?.stop()]);
    for (const ns of [NSA, NSB]) {
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      namespaces.delete(ns);
    }
  });

  it('answers ARP and ICMP echo through readBatch/writeBatch: ping from the peer namespace sees 0% loss', async () => {
    await agentA.call('drain', { fd: fdA });
    await agentA.call('respond', { fd: fdA, mac: macAt(Uint8Array.from(PEER_MAC), 0), ip: PACKET_PEER_IP });
    let st: { batches: number[]; arp: number; echo: number; writes: Array<{ r: number; k: number }>; errors: string[] };
    let res: { code: number | null; out: string };
    try {
      res = await nsRun(NSB, ['ping', '-n', '-c', '5', '-i', '0.2', '-W', '1', PACKET_PEER_IP]);
    } finally {
      st = await agentA.call('respondStop');
    }
    expect(st.errors).toEqual([]);
    expect(st.arp).toBeGreaterThanOrEqual(1);
    expect(st.echo).toBe(5);
    // every batch of replies went out whole, without a hard error
    expect(st.writes.every((w) => w.r === w.k)).toBe(true);
    expect(res.out).toMatch(/5 packets transmitted, 5 received, 0% packet loss/);
    expect(res.code).toBe(0);
    // the peer learnt PEER_MAC for the address (it came from our ARP reply)
    expect(ip('-n', NSB, 'neigh', 'show', PACKET_PEER_IP)).toContain('02:00:5e:10:99:01');
  });

  it('one writeBatch sends many frames; one readBatch returns all that wait; nothing sent is read back', async () => {
    // a second socket on the same interface: PACKET_IGNORE_OUTGOING keeps
    // the first one's transmissions from it too
    const a2 = await agentA.call<{ fd: number }>('open', { ifname: 'pa0' });
    try {
      await agentB.call('drain', { fd: fdB });
      await agentA.call('drain', { fd: fdA });
      await agentA.call('drain', { fd: a2.fd });
      const N = 150; // more than one recvmmsg/sendmmsg chunk (64)
      const frames = Array.from({ length: N }, (_, i) => markerHex(macB, 1, i, 60 + (i % 50)));
      expect(await agentA.call('send', { fd: fdA, frames })).toBe(N); // all consumed, none failed
      expect(await agentB.call('waitReadable', { fd: fdB, ms: 5000 })).toBe(true);
      const got = await agentB.call<{ n: number; frames: string[] }>('read', { fd: fdB, max: 256 });
      // one call returned every frame, in order, byte-exact
      expect(got.n).toBeGreaterThanOrEqual(N);
      expect(markerSeqs(got.frames, 1)).toEqual(Array.from({ length: N }, (_, i) => i));
      const sent = new Set(frames);
      expect(got.frames.filter((f) => sent.has(f)).length).toBe(N);
      // the sender, and another socket on its interface, see none of them
      const backA = await agentA.call<{ frames: string[] }>('drain', { fd: fdA });
      const backA2 = await agentA.call<{ frames: string[] }>('drain', { fd: a2.fd });
      expect(markerSeqs(backA.frames, 1)).toEqual([]);
      expect(markerSeqs(backA2.frames, 1)).toEqual([]);

      // the other way round: frames arriving on pa0 reach both sockets there
      const back = Array.from({ length: 10 }, (_, i) => markerHex(macA, 2, i));
      expect(await agentB.call('send', { fd: fdB, frames: back })).toBe(10);
      expect(await agentA.call('waitReadable', { fd: fdA, ms: 5000 })).toBe(true);
      const inA = await agentA.call<{ calls: number[]; frames: string[] }>('drain', { fd: fdA });
      const inA2 = await agentA.call<{ calls: number[]; frames: string[] }>('drain', { fd: a2.fd });
      expect(markerSeqs(inA.frames, 2)).toEqual(Array.from({ length: 10 }, (_, i) => i));
      expect(markerSeqs(inA2.frames, 2)).toEqual(Array.from({ length: 10 }, (_, i) => i));
      expect(inA.calls[0]).toBeGreaterThanOrEqual(10); // several frames in the first call
      expect(markerSeqs((await agentB.call<{ frames: string[] }>('drain', { fd: fdB })).frames, 2)).toEqual([]);
    } finally {
      await agentA.call('close', { fd: a2.fd });
    }
  });

  it('writeBatch on a packet socket: hard errors are consumed and counted', async () => {
    // ok, too short for Ethernet (EINVAL), ok
    const short = markerHex(macB, 3, 0).slice(0, 20);
    expect(await agentA.call('send', { fd: fdA, frames: [markerHex(macB, 3, 1), short, markerHex(macB, 3, 2)] })).toBe(3 + 65536);
    await agentB.call('waitReadable', { fd: fdB, ms: 2000 });
    expect(markerSeqs((await agentB.call<{ frames: string[] }>('drain', { fd: fdB })).frames, 3)).toEqual([1, 2]);
  });

  it('puts VLAN tags the kernel stripped back in and completes offloaded checksums', async () => {
    await agentA.call('drain', { fd: fdA });
    // an 802.1Q frame (VID 5) and an 802.1ad one: every receiving interface
    // untags them before packet sockets see them
    const q = Buffer.from(markerHex(macA, 4, 7, 70), 'hex');
    const tagged = Buffer.concat([q.subarray(0, 12), Buffer.from([0x81, 0x00, 0x20, 0x05]), q.subarray(12)]);
    const sTagged = Buffer.concat([q.subarray(0, 12), Buffer.from([0x88, 0xa8, 0x00, 0x09]), q.subarray(12)]);
    expect(await agentB.call('send', { fd: fdB, frames: [tagged.toString('hex'), sTagged.toString('hex')] })).toBe(2);
    // UDP from the peer's stack: veth has tx checksumming on, so the
    // datagram leaves NSB with only the pseudo-header sum in it
    ip('-n', NSB, 'neigh', 'replace', PACKET_PEER_IP, 'lladdr', '02:00:5e:10:99:01', 'dev', 'pb0');
    const payload = Buffer.from('usernet checksum test, odd length!').toString('hex');
    await agentB.call('udp', { host: PACKET_PEER_IP, port: 9999, payload });
    await agentA.call('waitReadable', { fd: fdA, ms: 2000 });
    await new Promise((r) => setTimeout(r, 100));
    const got = (await agentA.call<{ frames: string[] }>('drain', { fd: fdA })).frames.map((h) => Buffer.from(h, 'hex'));
    expect(got.map((b) => b.toString('hex'))).toContain(tagged.toString('hex'));
    expect(got.map((b) => b.toString('hex'))).toContain(sTagged.toString('hex'));
    const udp = got.find((b) => b.readUInt16BE(12) === 0x0800 && b[23] === 17 && b.readUInt16BE(36) === 9999);
    expect(udp).toBeDefined();
    const f = udp!;
    const ihl = (f[14] & 15) * 4;
    const l4 = 14 + ihl;
    const udpLen = f.readUInt16BE(l4 + 4);
    expect(f.subarray(l4 + 8, l4 + udpLen).toString('hex')).toBe(payload);
    // verify over pseudo-header + datagram: the one's-complement sum is 0xffff
    const pseudo = Buffer.concat([f.subarray(26, 34), Buffer.from([0, 17, udpLen >> 8, udpLen & 0xff]), f.subarray(l4, l4 + udpLen)]);
    expect(f.readUInt16BE(l4 + 6)).not.toBe(0);
    expect(inetChecksum(pseudo, 0, pseudo.length)).toBe(0);
  });

  it('drops and counts frames larger than a slot (MSG_TRUNC) instead of truncating them', async () => {
    ip('-n', NSA, 'link', 'set', 'pa0', 'mtu', '4000');
    ip('-n', NSB, 'link', 'set', 'pb0', 'mtu', '4000');
    try {
      ip('-n', NSB, 'neigh', 'replace', PACKET_PEER_IP, 'lladdr', '02:00:5e:10:99:01', 'dev', 'pb0');
      await agentA.call('drain', { fd: fdA });
      const before = (await agentA.call<{ oversized: number }>('stats')).oversized;
      await nsRun(NSB, ['ping', '-n', '-c', '1', '-W', '0.2', '-s', '3000', PACKET_PEER_IP]);
      await nsRun(NSB, ['ping', '-n', '-c', '1', '-W', '0.2', '-s', '100', PACKET_PEER_IP]);
      const got = await agentA.call<{ frames: string[] }>('drain', { fd: fdA });
      const lens = got.frames.map((h) => h.length / 2);
      expect((await agentA.call<{ oversized: number }>('stats')).oversized - before).toBe(1);
      expect(lens).toContain(14 + 20 + 8 + 100);
      expect(lens.every((l) => l <= 1920)).toBe(true);
      expect(await agentA.call('freeFrames')).toBe(1024); // the agent's pool: nothing leaked
    } finally {
      ip('-n', NSA, 'link', 'set', 'pa0', 'mtu', '1500');
      ip('-n', NSB, 'link', 'set', 'pb0', 'mtu', '1500');
    }
  });

  it('opens in another namespace with opts.netns; the watcher survives link down/up (ENETDOWN once)', async () => {
    // this process stays in its own namespace: pa0 does not exist here
    expect(() => native.openPacket('pa0')).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    const s = native.openPacket('pa0', { netns: NSA });
    openFds.add(s.fd);
    expect(s.ifindex).toBe(linkInfo(NSA, 'pa0').ifindex);
    expect(macString(s.mac)).toBe(macA);
    const seqs: number[] = [];
    const errors: string[] = [];
    const rx = new Uint32Array(32);
    const onReadable = (): void => {
      for (let i = 0; i < rx.length; i++) rx[i] = pool.alloc();
      try {
        const n = native.readBatch(s.fd, rx, rx.length);
        for (let i = 0; i < n; i++) {
          const b = pool.toBytes(rx[i]);
          if (b.length >= 17 && ((b[12] << 8) | b[13]) === MARKER_TYPE && b[14] === 5) seqs.push((b[15] << 8) | b[16]);
        }
      } catch (e) {
        errors.push(String((e as NodeJS.ErrnoException).code));
      }
      for (let i = 0; i < rx.length; i++) pool.free(rx[i]);
    };
    const watcher = pollStart(s.fd, onReadable);
    try {
      expect(await agentB.call('send', { fd: fdB, frames: [markerHex(macA, 5, 1)] })).toBe(1);
      expect(await waitFor(() => seqs.includes(1), 5000)).toBe(true);
      ip('-n', NSA, 'link', 'set', 'pa0', 'down');
      expect(await waitFor(() => errors.length > 0, 5000)).toBe(true);
      expect(errors).toEqual(['ENETDOWN']);
      ip('-n', NSA, 'link', 'set', 'pa0', 'up');
      // veth carrier comes back at once; frames flow to the same watcher again
      expect(await waitFor(() => {
        agentB.call('send', { fd: fdB, frames: [markerHex(macA, 5, 2)] }).catch(() => undefined);
        return seqs.includes(2);
      }, 5000)).toBe(true);
      expect(errors).toEqual(['ENETDOWN']);
      expect(native.stats().watchers).toBe(1);
      expect(pool.inUse).toBe(0);
    } finally {
      pollStop(watcher);
      closeFd(s.fd);
    }
  });

  it('openPacket errors: missing interface, not Ethernet, missing namespace', () => {
    expect(() => native.openPacket('nosuch0', { netns: NSA })).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(() => native.openPacket('lo', { netns: NSA })).toThrow(expect.objectContaining({ code: 'EPROTONOSUPPORT' }));
    expect(() => native.openPacket('pa0', { netns: `${prefix}nope` })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => native.openPacket('pa0', { netns: `${prefix}nope` })).toThrow(/open netns '\/run\/netns\//);
  });
});
