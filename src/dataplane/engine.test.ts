import { describe, expect, it } from 'vitest';
import { Engine, type Device, type Element } from './engine.js';
import { FramePool } from './pool.js';
import { Port } from './port.js';

/** A device whose "wire" is a JS queue: pull moves queued frames to port.rx, push records what was written. */
class FakeDevice implements Device {
  ready = false;
  batchFull = false;
  readonly written: number[] = [];
  readonly queue: number[] = [];
  /** frames the stack behind this device answers with, synchronously, when we write to it */
  echo = false;
  constructor(
    readonly pool: FramePool,
    readonly port: Port,
    readonly batch = 4,
  ) {}
  get hasOutput(): boolean {
    return !this.port.tx.empty;
  }
  pull(): number {
    let n = 0;
    while (n < this.batch && this.queue.length) {
      const h = this.queue.shift()!;
      this.pool.inPort[h] = this.port.id;
      this.port.rx.push(h);
      n++;
    }
    this.batchFull = n === this.batch;
    return n;
  }
  push(): void {
    for (let h = this.port.tx.pop(); h >= 0; h = this.port.tx.pop()) {
      this.written.push(this.pool.lengths[h]);
      if (this.echo) this.queue.push(this.pool.fromBytes(new Uint8Array(this.pool.lengths[h] + 1)));
      this.pool.free(h);
    }
  }
}

/** Cross-connects two ports (a → b, b → a). */
class Wire implements Element {
  ticks: number[] = [];
  constructor(
    readonly a: Port,
    readonly b: Port,
  ) {}
  process(): void {
    for (let h = this.a.rx.pop(); h >= 0; h = this.a.rx.pop()) this.b.tx.push(h);
    for (let h = this.b.rx.pop(); h >= 0; h = this.b.rx.pop()) this.a.tx.push(h);
  }
  tick(now: number): void {
    this.ticks.push(now);
  }
}

function setup() {
  let now = 0;
  const pool = new FramePool({ capacity: 64, slotSize: 256, headroom: 0 });
  const e = new Engine(() => now);
  const a = new FakeDevice(pool, new Port(1, 'a'));
  const b = new FakeDevice(pool, new Port(2, 'b'));
  const w = new Wire(a.port, b.port);
  e.addDevice(a);
  e.addDevice(b);
  e.addElement(w);
  return { pool, e, a, b, w, setNow: (t: number) => (now = t) };
}

describe('Engine', () => {
  it('pulls only ready devices (and those it just wrote to), forwards, and pushes in one breath', () => {
    const { pool, e, a, b } = setup();
    b.queue.push(pool.fromBytes(new Uint8Array(70))); // b not ready: stays queued
    a.ready = true; // ready but nothing there
    e.breathe();
    expect(a.written).toEqual([]);
    expect(b.written).toEqual([]);
    expect(b.queue.length).toBe(1);
    a.queue.push(pool.fromBytes(new Uint8Array(60)));
    a.ready = true;
    e.breathe();
    expect(b.written).toEqual([60]);
    // b was written to, so it was pulled again in the same breath: its waiting frame went out through a
    expect(a.written).toEqual([70]);
    expect(b.queue.length).toBe(0);
    expect(pool.inUse).toBe(0);
  });

  it('catches the answer to a write in the same breath (re-pulls devices it pushed to)', () => {
    const { pool, e, a, b } = setup();
    b.echo = true; // the stack behind b answers at once, as a TAP's does
    a.queue.push(pool.fromBytes(new Uint8Array(60)));
    a.ready = true;
    e.breathe();
    expect(b.written).toEqual([60]);
    expect(a.written).toEqual([61]); // the answer went back out through a, same breath
    expect(e.breaths).toBe(1);
  });

  it('stops after a bounded number of rounds', () => {
    const { pool, e, a, b } = setup();
    a.echo = true;
    b.echo = true; // an endless echo loop
    a.queue.push(pool.fromBytes(new Uint8Array(10)));
    a.ready = true;
    e.rounds = 4;
    e.breathe();
    expect(a.written.length + b.written.length).toBe(4);
    e.stop();
  });

  it('runs tick() once per tick period of the injected clock', () => {
    const { e, w, setNow } = setup();
    setNow(1000);
    e.breathe();
    setNow(1500);
    e.breathe();
    setNow(2000);
    e.breathe();
    expect(w.ticks).toEqual([1000, 2000]);
  });
});

describe('Engine busy-poll', () => {
  it('keeps the loop polling for busyPollMs after traffic, then sleeps', async () => {
    const { pool, e, a, setNow } = setup();
    e.busyPollMs = 10;
    let spins = 0;
    const realSetImmediate = globalThis.setImmediate;
    // count the immediates the engine schedules while hot
    globalThis.setImmediate = ((fn: () => void) => {
      spins++;
      return realSetImmediate(fn);
    }) as typeof setImmediate;
    try {
      setNow(100);
      a.queue.push(pool.fromBytes(new Uint8Array(60)));
      a.ready = true;
      e.breathe();
      await new Promise((r) => realSetImmediate(r));
      await new Promise((r) => realSetImmediate(r));
      const hot = spins;
      expect(hot).toBeGreaterThan(0); // spinning while within the window
      setNow(111); // quiet for longer than the window
      await new Promise((r) => setTimeout(r, 5));
      const after = spins;
      await new Promise((r) => setTimeout(r, 5));
      expect(spins).toBe(after); // stopped: back to sleeping
      // with busyPollMs = 0 nothing is scheduled
      e.busyPollMs = 0;
      a.queue.push(pool.fromBytes(new Uint8Array(60)));
      a.ready = true;
      e.breathe();
      await new Promise((r) => setTimeout(r, 5));
      expect(spins).toBe(after);
    } finally {
      globalThis.setImmediate = realSetImmediate;
    }
  });
});
