import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DropReason } from '../dataplane/counters.js';
import { FramePool } from '../dataplane/pool.js';
import { Port, PortIds } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';
import { rng } from '../lab/rng.js';
import { fromHex, toHex } from '../wire/bytes.js';
import { FX } from '../wire/fixtures.js';
import { ParentDemux } from './parent-demux.js';

const M1 = 0x0242ac110001;
const M2 = 0x0242ac110002;
const BCAST = 0xffffffffffff;

/** An untagged Ethernet frame: dst, src, ethertype, then payload bytes up to `len`. */
function frame(dst: number, src: number, len = 60, ethertype = 0x0800, fill = 0): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < 6; i++) {
    b[i] = Math.floor(dst / 2 ** (8 * (5 - i))) & 0xff;
    b[6 + i] = Math.floor(src / 2 ** (8 * (5 - i))) & 0xff;
  }
  b[12] = ethertype >> 8;
  b[13] = ethertype & 0xff;
  for (let i = 14; i < len; i++) b[i] = (i + fill) & 0xff;
  return b;
}

/** The same frame with an 802.1Q tag (TPID tpid, TCI tci) after the addresses. */
function tag(f: Uint8Array, tci: number, tpid = 0x8100): Uint8Array {
  const b = new Uint8Array(f.length + 4);
  b.set(f.subarray(0, 12), 0);
  b[12] = tpid >> 8;
  b[13] = tpid & 0xff;
  b[14] = tci >> 8;
  b[15] = tci & 0xff;
  b.set(f.subarray(12), 16);
  return b;
}

describe('ParentDemux', () => {
  let pool: FramePool;
  let dev: Port;
  let dm: ParentDemux;
  let v0: Port;
  let v100: Port;
  let v200: Port;

  function inject(ring: Ring, bytes: Uint8Array, inPort = 1): number {
    const h = pool.fromBytes(bytes, inPort);
    expect(ring.push(h)).toBe(true);
    return h;
  }
  /** frames waiting in `ring`, as hex, freed */
  function take(ring: Ring): string[] {
    const out: string[] = [];
    for (let h = ring.pop(); h >= 0; h = ring.pop()) {
      out.push(toHex(pool.toBytes(h)));
      pool.free(h);
    }
    return out;
  }
  function drainAll(): void {
    for (const p of [dev, v0, v100, v200]) {
      take(p.rx);
      take(p.tx);
    }
  }

  beforeEach(() => {
    pool = new FramePool({ capacity: 256 });
    dev = new Port(1, 'eth0', 64);
    dm = new ParentDemux(pool, dev, { ringSize: 64 });
    v0 = dm.vlanPort(0, 'eth0');
    v100 = dm.vlanPort(100, 'eth0.100');
    v200 = dm.vlanPort(200, 'eth0.200');
  });

  afterEach(() => {
    drainAll();
    expect(pool.inUse).toBe(0);
  });

  it('delivers each VLAN to its own port, tag popped byte-exactly, untagged to VLAN 0', () => {
    const a = frame(M2, M1, 60, 0x0800, 1);
    const b = frame(BCAST, M1, 64, 0x0806, 2);
    const u = frame(M1, M2, 70, 0x0800, 3);
    inject(dev.rx, tag(a, 100));
    inject(dev.rx, tag(b, 200));
    inject(dev.rx, u);
    dm.process(0);
    expect(take(v100.rx)).toEqual([toHex(a)]);
    expect(take(v200.rx)).toEqual([toHex(b)]);
    expect(take(v0.rx)).toEqual([toHex(u)]);
    expect(v100.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: 60, txPackets: 0, drops: 0 });
    expect(v200.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: 64 });
    expect(v0.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: 70 });
    expect(dm.counters.snapshot()).toMatchObject({ rxPackets: 3, rxBytes: 64 + 68 + 70, txPackets: 3, txBytes: 194, drops: 0 });
  });

  it('never lets one VLAN see another’s frames (nor untagged ones), both ways', () => {
    for (let i = 0; i < 5; i++) {
      inject(dev.rx, tag(frame(BCAST, M1, 60, 0x0800, i), 100));
      inject(dev.rx, tag(frame(BCAST, M2, 60, 0x0800, i), 200));
      inject(dev.rx, frame(BCAST, M1, 60, 0x0806, i));
    }
    dm.process(0);
    const src = (hex: string): string => hex.slice(12, 24);
    expect(take(v100.rx).map(src)).toEqual(Array(5).fill('0242ac110001'));
    expect(take(v200.rx).map(src)).toEqual(Array(5).fill('0242ac110002'));
    expect(take(v0.rx).map((h) => h.slice(24, 28))).toEqual(Array(5).fill('0806'));
    // and what the VLAN ports send only leaves with their own tag
    inject(v100.tx, frame(BCAST, M1));
    inject(v200.tx, frame(BCAST, M2));
    inject(v0.tx, frame(BCAST, M1));
    dm.process(0);
    // (VLAN ports are served in creation order: 0, 100, 200)
    expect(take(dev.tx).map((h) => h.slice(24, 32))).toEqual(['0800' + h4(14) + h4(15), '81000064', '810000c8']);
    expect(v100.rx.empty && v200.rx.empty && v0.rx.empty).toBe(true);
  });

  it('pushes the tag (PCP 0) into the headroom byte-exactly, and sends VLAN 0 unchanged', () => {
    const f = frame(M2, M1, 60);
    inject(v0.tx, f);
    const h = inject(v100.tx, f);
    const off = pool.offsets[h];
    dm.process(0);
    const hs: number[] = [];
    for (let x = dev.tx.pop(); x >= 0; x = dev.tx.pop()) hs.push(x);
    expect(hs[1]).toBe(h); // the same frame, no copy
    expect(pool.offsets[h]).toBe(off - 4);
    expect(toHex(pool.toBytes(hs[0]))).toBe(toHex(f));
    expect(toHex(pool.toBytes(hs[1]))).toBe(toHex(tag(f, 100)));
    for (const x of hs) pool.free(x);
    expect(v100.counters.snapshot()).toMatchObject({ txPackets: 1, txBytes: 64, drops: 0 });
    expect(v0.counters.snapshot()).toMatchObject({ txPackets: 1, txBytes: 60 });
  });

  it('round-trips the tagged fixture: pop on receive, push (PCP 0) on transmit', () => {
    const tagged = fromHex(FX.vlanIcmpEcho); // PCP 5, VID 100
    const h = inject(dev.rx, tagged);
    const off = pool.offsets[h];
    dm.process(0);
    const g = v100.rx.pop();
    expect(g).toBe(h); // moved, not copied
    expect(pool.offsets[g]).toBe(off + 4);
    const plain = toHex(pool.toBytes(g));
    expect(plain).toBe(toHex(tagged).slice(0, 24) + toHex(tagged).slice(32));
    expect(pool.inPort[g]).toBe(v100.id);
    v100.tx.push(g);
    dm.process(0);
    expect(take(dev.tx)).toEqual([toHex(tagged).slice(0, 24) + '81000064' + toHex(tagged).slice(32)]);
  });

  it('drops frames of a VLAN without a port (filtered), and VID 4095, on the element and the device', () => {
    inject(dev.rx, tag(frame(BCAST, M1), 300));
    inject(dev.rx, tag(frame(BCAST, M1), 0xfff));
    dm.process(0);
    expect(dm.counters.snapshot().dropReasons).toEqual({ filtered: 2 });
    expect(dev.counters.snapshot().dropReasons).toEqual({ filtered: 2 });
    expect(v0.rx.empty && v100.rx.empty && v200.rx.empty).toBe(true);
    dm.release(0);
    inject(dev.rx, frame(BCAST, M1));
    dm.process(0);
    expect(dev.counters.reasons[DropReason.filtered]).toBe(3);
  });

  it('untags priority-tagged frames (VID 0) to VLAN 0 and leaves 802.1ad frames alone', () => {
    const f = frame(M2, M1, 60);
    inject(dev.rx, tag(f, 0xa000)); // PCP 5, VID 0
    const qinq = tag(tag(f, 100), 10, 0x88a8);
    inject(dev.rx, qinq);
    dm.process(0);
    expect(take(v0.rx)).toEqual([toHex(f), toHex(qinq)]);
  });

  it('drops runts: < 14 bytes, and a tagged frame < 18 bytes', () => {
    inject(dev.rx, new Uint8Array(13));
    inject(dev.rx, tag(frame(BCAST, M1, 14), 100).subarray(0, 17));
    inject(v100.tx, new Uint8Array(10));
    dm.process(0);
    expect(dm.counters.snapshot().dropReasons).toEqual({ runt: 3 });
    expect(dev.counters.snapshot().dropReasons).toEqual({ runt: 2 });
    expect(v100.counters.snapshot().dropReasons).toEqual({ runt: 1 });
    // exactly 18 tagged bytes is a (tiny) frame
    inject(dev.rx, tag(frame(BCAST, M1, 14), 100));
    dm.process(0);
    expect(take(v100.rx).length).toBe(1);
  });

  it('counts portDown (VLAN port down, device down) and ringFull', () => {
    v100.up = false;
    inject(dev.rx, tag(frame(BCAST, M1), 100));
    inject(v100.tx, frame(BCAST, M1));
    dm.process(0);
    expect(v100.counters.snapshot().dropReasons).toEqual({ portDown: 2 });
    v100.up = true;
    dev.up = false;
    inject(v200.tx, frame(BCAST, M1));
    dm.process(0);
    expect(v200.counters.snapshot().dropReasons).toEqual({ portDown: 1 });
    dev.up = true;
    for (let i = 0; i < 64; i++) v0.rx.push(pool.alloc());
    for (let i = 0; i < 64; i++) dev.tx.push(pool.alloc());
    inject(dev.rx, frame(BCAST, M1));
    inject(v100.tx, frame(BCAST, M1));
    dm.process(0);
    expect(v0.counters.snapshot().dropReasons).toEqual({ ringFull: 1 });
    expect(v100.counters.snapshot().dropReasons).toEqual({ portDown: 2, ringFull: 1 });
    expect(dm.counters.snapshot().dropReasons).toEqual({ portDown: 3, ringFull: 2 });
  });

  it('counts oversize when no headroom is left for the tag', () => {
    const p2 = new FramePool({ capacity: 4, headroom: 2, slotSize: 256 });
    const d2 = new Port(9, 'eth9', 8);
    const m2 = new ParentDemux(p2, d2);
    const v = m2.vlanPort(5, 'eth9.5');
    v.tx.push(p2.fromBytes(frame(BCAST, M1)));
    m2.process(0);
    expect(m2.counters.snapshot().dropReasons).toEqual({ oversize: 1 });
    expect(p2.inUse).toBe(0);
  });

  it('vlanPort returns the existing port, checks its range; release frees frames and gives ids back', () => {
    expect(dm.vlanPort(100, 'other')).toBe(v100);
    expect(() => dm.vlanPort(4095, 'x')).toThrow(/out of range/);
    expect(() => dm.vlanPort(-1, 'x')).toThrow(/out of range/);
    expect(dm.vlans()).toEqual([0, 100, 200]);
    expect(v100.id).toBe(dev.id); // no PortIds: the device's id
    inject(v100.rx, frame(BCAST, M1));
    inject(v100.tx, frame(BCAST, M1));
    dm.release(100);
    expect(pool.inUse).toBe(0);
    expect(dm.port(100)).toBe(null);
    expect(dm.vlans()).toEqual([0, 200]);
    inject(dev.rx, tag(frame(BCAST, M1), 100));
    dm.process(0);
    expect(dm.counters.snapshot().dropReasons).toEqual({ filtered: 1 });

    const ids = new PortIds();
    ids.alloc(); // 1
    const d = new ParentDemux(pool, new Port(1, 'eth1'), { portIds: ids });
    const a = d.vlanPort(10, 'eth1.10');
    const b = d.vlanPort(20, 'eth1.20');
    expect([a.id, b.id]).toEqual([2, 3]);
    d.release(10);
    expect(d.vlanPort(30, 'eth1.30').id).toBe(2);
  });

  it('survives random bytes: never throws, every frame delivered or dropped once, no leak', () => {
    const r = rng(42);
    let n = 0;
    for (let round = 0; round < 200; round++) {
      for (let k = 0; k < 8; k++) {
        const len = Math.floor(r() * 80);
        const b = new Uint8Array(len);
        for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
        // bias towards tags of existing VLANs
        if (len >= 16 && r() < 0.5) {
          b[12] = 0x81;
          b[13] = 0;
          b[14] = r() < 0.5 ? 0 : 0xf0;
          b[15] = [0, 100, 200, 7][Math.floor(r() * 4)];
        }
        const ring = [dev.rx, v0.tx, v100.tx, v200.tx][Math.floor(r() * 4)];
        ring.push(pool.fromBytes(b));
        n++;
      }
      dm.process(round);
      drainAll();
      expect(pool.inUse).toBe(0);
    }
    const c = dm.counters;
    expect(c.rxPackets).toBe(n);
    expect(c.txPackets + c.drops).toBe(n);
    expect(c.txPackets).toBeGreaterThan(n / 3);
  });
});

/** hex of byte i of frame(BCAST, M1) (the untagged frame's payload bytes are i & 0xff) */
function h4(i: number): string {
  return (i & 0xff).toString(16).padStart(2, '0');
}
