import { afterEach, describe, expect, it } from 'vitest';
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

/** every engine made here: its polling follows the fake clock, which only the test moves, so each is stopped after its test */
const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.stop();
});

function setup() {
  let now = 0;
  const pool = new FramePool({ capacity: 64, slotSize: 256, headroom: 0 });
  const e = new Engine(() => now);
  engines.push(e);
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
      // with polling off (busyPollMs = 0 and adaptivePoll = false) nothing is scheduled
      e.busyPollMs = 0;
      e.adaptivePoll = false;
      a.queue.push(pool.fromBytes(new Uint8Array(60)));
      a.ready = true;
      e.breathe();
      expect(e.isPolling).toBe(false);
      await new Promise((r) => setTimeout(r, 5));
      expect(spins).toBe(after);
    } finally {
      globalThis.setImmediate = realSetImmediate;
    }
  });
});

describe('Engine adaptive polling (the default)', () => {
  /** one turn of the event loop: a pending spin immediate runs before this resolves */
  const turn = () => new Promise((r) => setImmediate(r));

  it('polls only while frames come close together: opens a window on a short gap, doubles it on frames caught while polling (up to pollMaxMs), halves it when it ends empty; sparse frames and idle breaths never poll', async () => {
    const { pool, e, a, b, setNow } = setup();
    expect(e.adaptivePoll).toBe(true);
    expect(e.busyPollMs).toBe(0);
    e.pollMinMs = 0.05;
    e.pollMaxMs = 0.4;
    const frame = (t: number, len = 60) => {
      setNow(t);
      a.queue.push(pool.fromBytes(new Uint8Array(len)));
      a.ready = true;
      e.readyNow(); // as the readiness watcher does
    };
    // idle: a breath that reads nothing (the tick timer's) does not poll
    setNow(50);
    e.breathe();
    expect(e.isPolling).toBe(false);

    // sparse frames (gaps > pollMaxMs): forwarded, and the loop goes back to sleep
    frame(100);
    frame(101);
    expect(b.written).toEqual([60, 60]);
    expect(e.isPolling).toBe(false);
    expect(e.pollWindowMs).toBe(0);

    // a frame 0.1 ms after the last one woke the loop: a window 1.5× that gap opens
    frame(101.1);
    expect(e.isPolling).toBe(true);
    expect(e.pollWindowMs).toBeCloseTo(0.15);
    await turn();
    await turn();
    expect(e.isPolling).toBe(true); // the clock has not moved: still inside the window

    // frames that keep arriving inside the window: each one caught while polling doubles it, up to pollMaxMs
    const windows: number[] = [];
    let t = 101.1;
    for (let i = 0; i < 3; i++) {
      t += e.pollWindowMs * 0.9; // just before the window ends
      setNow(t);
      await turn();
      expect(e.isPolling).toBe(true);
      frame(t, 61 + i);
      windows.push(Math.round(e.pollWindowMs * 1000) / 1000);
    }
    expect(windows).toEqual([0.3, 0.4, 0.4]);
    expect(e.polledHits).toBe(3);
    expect(b.written).toEqual([60, 60, 60, 61, 62, 63]);

    // quiet for longer than the window: polling stops (the loop sleeps) and the window halves
    setNow(t + 0.39);
    await turn();
    expect(e.isPolling).toBe(true);
    setNow(t + 0.41);
    await turn();
    expect(e.isPolling).toBe(false);
    expect(e.pollWindowMs).toBe(0.2);
    expect(e.polledEmpty).toBe(1);

    // bursts of two frames 0.02 ms apart, far from each other: the first finds the loop asleep and
    // opens nothing (a long gap before it), the second opens a window (no smaller than the last one),
    // which ends empty: each halves the window, until below pollMinMs it closes (then pollMinMs)
    const shrinking: number[] = [];
    for (let i = 0; i < 4; i++) {
      t += 20;
      frame(t);
      expect(e.isPolling).toBe(false);
      frame(t + 0.02);
      expect(e.isPolling).toBe(true);
      setNow(t + 0.02 + e.pollWindowMs + 0.001);
      await turn();
      expect(e.isPolling).toBe(false);
      shrinking.push(e.pollWindowMs);
    }
    expect(shrinking).toEqual([0.1, 0.05, 0, 0]);
    expect(e.polledEmpty).toBe(5);
    expect(e.polledHits).toBe(3);
    expect(b.written.length).toBe(6 + 8);
    expect(pool.inUse).toBe(0);

    // stop() ends polling at once
    frame(t + 40);
    frame(t + 40.1);
    expect(e.isPolling).toBe(true);
    e.stop();
    expect(e.isPolling).toBe(false);
    await turn();
    expect(e.isPolling).toBe(false);
  });

  it('a fixed busyPollMs window (--busy-poll MS) polls after every breath that read frames, sparse or not, and does not adapt', async () => {
    const { pool, e, a, setNow } = setup();
    e.busyPollMs = 2;
    const frame = (t: number) => {
      setNow(t);
      a.queue.push(pool.fromBytes(new Uint8Array(60)));
      a.ready = true;
      e.readyNow();
    };
    frame(10); // the first frame after a long quiet spell: the adaptive policy would sleep
    setNow(11.9);
    await new Promise((r) => setImmediate(r));
    expect(e.isPolling).toBe(true);
    frame(11.9);
    setNow(13.85);
    await new Promise((r) => setImmediate(r));
    expect(e.isPolling).toBe(true); // the caught frame restarted the 2 ms window
    setNow(13.91);
    await new Promise((r) => setImmediate(r));
    expect(e.isPolling).toBe(false);
    expect(e.pollWindowMs).toBe(0);
    expect(e.polledHits + e.polledEmpty).toBe(0);
  });
});
