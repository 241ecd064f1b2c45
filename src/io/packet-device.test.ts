// PacketDevice through the engine, on a veth pair in two namespaces made
// here (pa0 in NSA, pb0 in NSB; nothing in the runner's own namespace). The
// socket is opened in NSA from this process (openPacket's netns option); a
// tiny element answers ARP and ICMP echo for 10.96.0.1 with the interface's
// own MAC (as the router does on an uplink); ping in NSB is the judge.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { Engine, type Element } from '../dataplane/engine.js';
import { FramePool } from '../dataplane/pool.js';
import { Port, type FrameSink } from '../dataplane/port.js';
import { loadNative } from './native.js';
import { PacketDevice } from './packet-device.js';
import { ip, waitFor, nsRunner, vethPair } from '../lab/ns-kit.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn(
    '\n*** SKIPPED: needs root: src/io/packet-device.test.ts (PacketDevice on a veth in namespaces: ping through ' +
      'the engine, link down/up, flood ping) did not run ***\n',
  );
}

const native = loadNative();
const pool = new FramePool({ capacity: 1024 });
native.bindPool(pool.buffer, pool.offsets, pool.lengths, pool.slotSize, pool.headroom);

const prefix = `unp${process.pid % 10000}${Math.random().toString(36).slice(2, 4)}`;
const NSA = `${prefix}a`;
const NSB = `${prefix}b`;
const IP_A = [10, 96, 0, 1];
const namespaces = new Set<string>();
const children: Array<ReturnType<typeof spawn>> = [];
const nsRun = nsRunner(children, 30_000);




function inetChecksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if ((end - start) & 1) sum += b[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function macString(mac: number): string {
  return Array.from({ length: 6 }, (_, i) => (Math.floor(mac / 2 ** (8 * (5 - i))) % 256).toString(16).padStart(2, '0')).join(':');
}

/** Answers ARP for IP_A and ICMP echo to IP_A on one port, as `mac`. */
class Responder implements Element {
  arp = 0;
  echo = 0;
  other = 0;
  private readonly macBytes: number[];
  constructor(
    private readonly port: Port,
    mac: number,
  ) {
    this.macBytes = Array.from({ length: 6 }, (_, i) => Math.floor(mac / 2 ** (8 * (5 - i))) % 256);
  }
  process(): void {
    const b = pool.bytes;
    for (let h = this.port.rx.pop(); h >= 0; h = this.port.rx.pop()) {
      const o = pool.offsets[h];
      const len = pool.lengths[h];
      const type = (b[o + 12] << 8) | b[o + 13];
      const toUs = (at: number): boolean => IP_A.every((x, i) => b[o + at + i] === x);
      if (type === 0x0806 && len >= 42 && b[o + 21] === 1 && toUs(38)) {
        this.arp++;
        const r = pool.alloc();
        const ro = pool.offsets[r];
        b.copyWithin(ro, o + 6, o + 12); // dst = requester
        b.set(this.macBytes, ro + 6);
        b.set([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02], ro + 12);
        b.set(this.macBytes, ro + 22);
        b.set(IP_A, ro + 28);
        b.copyWithin(ro + 32, o + 22, o + 32); // tha/tpa = requester sha/spa
        pool.lengths[r] = 42;
        this.port.tx.push(r);
        pool.free(h);
      } else if (type === 0x0800 && len >= 42 && b[o + 23] === 1 && toUs(30)) {
        const ihl = (b[o + 14] & 15) * 4;
        const ipEnd = 14 + ((b[o + 16] << 8) | b[o + 17]);
        const icmp = o + 14 + ihl;
        if (b[icmp] !== 8 || ipEnd > len) {
          pool.free(h);
          continue;
        }
        this.echo++;
        b.copyWithin(o, o + 6, o + 12);
        b.set(this.macBytes, o + 6);
        const src = b.slice(o + 26, o + 30);
        b.copyWithin(o + 26, o + 30, o + 34);
        b.set(src, o + 30);
        b[o + 22] = 64;
        b[o + 24] = b[o + 25] = 0;
        const s1 = inetChecksum(b, o + 14, o + 14 + ihl);
        b[o + 24] = s1 >> 8;
        b[o + 25] = s1 & 0xff;
        b[icmp] = 0;
        b[icmp + 2] = b[icmp + 3] = 0;
        const s2 = inetChecksum(b, icmp, o + ipEnd);
        b[icmp + 2] = s2 >> 8;
        b[icmp + 3] = s2 & 0xff;
        pool.lengths[h] = ipEnd;
        this.port.tx.push(h);
      } else {
        this.other++;
        pool.free(h);
      }
    }
  }
}

beforeAll(() => {
  if (!isRoot) return;
  vethPair(NSA, NSB, namespaces);
  ip('-n', NSB, 'addr', 'add', '10.96.0.2/24', 'dev', 'pb0');
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

describe('PacketDevice (no root needed)', () => {
  it('a failed open leaves nothing behind', () => {
    const before = pool.inUse;
    const watchers = native.stats().watchers;
    // without root: EPERM at socket(); as root: ENODEV (no such interface here)
    expect(() => new PacketDevice(native, pool, new Port(1, 'x'), 'nosuch0')).toThrow(/EPERM|ENODEV/);
    expect(pool.inUse).toBe(before);
    expect(native.stats().watchers).toBe(watchers);
  });
});

describe.skipIf(!isRoot)('PacketDevice on a veth (root)', () => {
  it('carries ARP and ICMP through the engine (ping 0% loss), survives link down/up, gives every frame back on close', async () => {
    const port = new Port(7, 'uplink:pa0');
    const dev = new PacketDevice(native, pool, port, 'pa0', { netns: NSA });
    const engine = new Engine();
    let captured = 0;
    const sink: FrameSink = { frame: () => void captured++ };
    try {
      const info = JSON.parse(ip('-n', NSA, '-j', 'link', 'show', 'pa0')) as Array<{ ifindex: number; address: string }>;
      expect(dev.ifname).toBe('pa0');
      expect(dev.ifindex).toBe(info[0].ifindex);
      expect(macString(dev.mac)).toBe(info[0].address);
      expect(dev.port).toBe(port);

      const responder = new Responder(port, dev.mac);
      engine.addDevice(dev);
      engine.addElement(responder);
      dev.captureSink = sink;
      dev.watch(() => engine.readyNow());
      engine.start();

      const r1 = await nsRun(NSB, ['ping', '-n', '-c', '5', '-i', '0.2', '-W', '1', '10.96.0.1']);
      expect(r1.out).toMatch(/5 packets transmitted, 5 received, 0% packet loss/);
      expect(responder.arp).toBeGreaterThanOrEqual(1);
      expect(responder.echo).toBe(5);
      // the peer resolved 10.96.0.1 to the interface's own MAC (from our reply)
      expect(ip('-n', NSB, 'neigh', 'show', '10.96.0.1')).toContain(info[0].address);
      const c = port.counters;
      expect(c.rxPackets).toBe(responder.arp + responder.echo + responder.other);
      expect(c.txPackets).toBe(responder.arp + responder.echo);
      expect(c.drops).toBe(0);
      expect(c.rxBytes).toBeGreaterThan(0);
      expect(c.txBytes).toBeGreaterThan(0);
      expect(captured).toBe(c.rxPackets + c.txPackets);
      expect(dev.readErrors).toBe(0);

      // link down: one ENETDOWN read error; up again: the same device works on
      ip('-n', NSA, 'link', 'set', 'pa0', 'down');
      expect(await waitFor(() => dev.readErrors > 0, 5000)).toBe(true);
      ip('-n', NSA, 'link', 'set', 'pa0', 'up');
      const r2 = await nsRun(NSB, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '1', '10.96.0.1']);
      expect(r2.out).toMatch(/3 packets transmitted, 3 received, 0% packet loss/);
      expect(dev.readErrors).toBe(1);

      // flood ping: many frames in flight through the batched path
      const r3 = await nsRun(NSB, ['ping', '-n', '-f', '-c', '2000', '-W', '1', '10.96.0.1']);
      expect(r3.out).toMatch(/2000 packets transmitted, 2000 received, 0% packet loss/);
      expect(port.counters.drops).toBe(0);
    } finally {
      engine.stop();
      engine.removeDevice(dev);
      dev.close();
      dev.close(); // idempotent
    }
    expect(pool.inUse).toBe(0);
    // closing the socket leaves the interface alone
    expect(ip('-n', NSA, 'link', 'show', 'pa0')).toContain('pa0');
  });
});
