/**
 * bench/switch — in-process learning-switch throughput (Mpps).
 *
 * Setup per case: N ports (default 4), M source/destination MACs (MAC i lives
 * behind port i % N and is learned before measuring), F prepared frames per
 * port (default 512) of the given size, each from a MAC of its ingress port
 * to a MAC behind the next port. A round is one `process()` call (the switch
 * drains every rx ring in batches and pushes each frame onto one tx ring);
 * between rounds the frames are recycled from the tx rings back to the rx
 * ring of their ingress port, so nothing is ever allocated.
 *
 * Only the time spent inside process() counts (a clock read around each
 * round); the recycling runs outside it. A case runs until ≥ `seconds` of
 * process() time have passed (default 1 s). value = frames / total
 * process() time; the note adds the median round's rate, which is robust
 * against other load on the machine, and the rate including recycling.
 *
 * Anchor: bench/reference/cswitch.c — the same loop in C (same pool layout,
 * rings, checks, MAC table and hash), built with `cc -O2` into build/cswitch
 * and run right after each case with the same parameters (it prints Mpps as
 * JSON). Rows carry anchor (C Mpps) and ratio (ours / C).
 */
import { spawnSync } from 'node:child_process';
import { FramePool } from '../src/dataplane/pool.js';
import { Port } from '../src/dataplane/port.js';
import { LearningSwitch } from '../src/switch/learning-switch.js';
import { isMain, printRows, round2 } from './lab-util.js';
import { buildReference } from './reference.js';
import type { Row } from './table.js';


export interface SwitchBenchOptions {
  /** seconds of process() time per case (default 1) */
  seconds?: number;
  /** ports on the switch (default 4) */
  ports?: number;
  /** prepared frames per port (default 512) */
  framesPerPort?: number;
  /** handles per ring pop (default 256) */
  batch?: number;
  /** frame sizes (default [64, 1500]) */
  sizes?: number[];
  /** MAC counts (default [16, 4096]) */
  macs?: number[];
  /** run the C anchor (default true) */
  anchor?: boolean;
  /** print progress to stderr */
  verbose?: boolean;
}

interface CaseResult {
  /** frames / total process() time */
  mpps: number;
  /** the median round's rate (robust against other load on the machine) */
  p50: number;
  /** frames / wall time including the recycling between rounds */
  wallMpps: number;
  frames: number;
}

/** MAC number for index i: 02:00:00:xx:xx:xx (locally administered unicast). */
function macOf(i: number): number {
  return 0x020000000000 + ((i * 0x9e37) & 0xffffff);
}

function writeFrame(pool: FramePool, h: number, dst: number, src: number, len: number): void {
  const b = pool.bytes;
  const o = pool.offsets[h];
  for (let i = 0; i < 6; i++) {
    b[o + i] = Math.floor(dst / 2 ** (8 * (5 - i))) & 0xff;
    b[o + 6 + i] = Math.floor(src / 2 ** (8 * (5 - i))) & 0xff;
  }
  b[o + 12] = 0x08;
  b[o + 13] = 0x00;
  for (let i = 14; i < len; i++) b[o + i] = i & 0xff;
  pool.lengths[h] = len;
}

function runCase(frameLen: number, nMacs: number, o: Required<SwitchBenchOptions>): CaseResult {
  const P = o.ports;
  const F = o.framesPerPort;
  let ringSize = 2;
  while (ringSize < 2 * F) ringSize *= 2;
  const pool = new FramePool({ capacity: P * F + 4 * 256 + 64, slotSize: 2048, headroom: 128 });
  const sw = new LearningSwitch(pool, { tableSize: Math.max(8192, 2 * nMacs), seed: 0x5eed, batch: o.batch });
  const ports: Port[] = [];
  for (let i = 0; i < P; i++) {
    const p = new Port(i + 1, `b${i}`, ringSize);
    ports.push(p);
    sw.attach(p);
  }
  // learn every MAC: one broadcast from each, behind port i % P
  for (let i = 0; i < nMacs; i++) {
    const h = pool.alloc();
    writeFrame(pool, h, 0xffffffffffff, macOf(i), 60);
    ports[i % P].rx.push(h);
    if (i % 256 === 255 || i === nMacs - 1) {
      // flood clones stay within the pool
      sw.process(0);
      for (const p of ports) for (let x = p.tx.pop(); x >= 0; x = p.tx.pop()) pool.free(x);
    }
  }
  if (sw.macCount !== nMacs) throw new Error(`learned ${sw.macCount} of ${nMacs} MACs`);
  // prepared frames: port p sends from its MACs to MACs behind port p+1
  const perPort = Math.max(1, Math.floor(nMacs / P));
  for (let p = 0; p < P; p++) {
    for (let k = 0; k < F; k++) {
      const s = ((k % perPort) * P + p) % nMacs;
      const d = ((((k * 7 + 3) % perPort) * P + ((p + 1) % P)) % nMacs) | 0;
      const h = pool.alloc();
      writeFrame(pool, h, macOf(d), macOf(s), frameLen);
      ports[p].rx.push(h);
    }
  }
  sw.counters.reset();
  const tmp = new Uint32Array(ringSize);
  const round = P * F;
  const times = new Float64Array(1 << 22); // per-round ms, preallocated
  let rounds = 0;
  let frames = 0;
  let procMs = 0;
  const limit = o.seconds * 1000;
  let now = 1;
  const wall0 = performance.now();
  while (procMs < limit) {
    const t0 = performance.now();
    sw.process(now);
    const dt = performance.now() - t0;
    procMs += dt;
    if (rounds < times.length) times[rounds++] = dt;
    frames += round;
    // recycle: frames in port q's tx ring came from port q-1
    for (let q = 0; q < P; q++) {
      const n = ports[q].tx.popInto(tmp, ringSize);
      const back = ports[(q + P - 1) % P].rx;
      for (let i = 0; i < n; i++) back.push(tmp[i]);
    }
    now += 0.01;
  }
  const wallMs = performance.now() - wall0;
  const c = sw.counters;
  if (c.drops !== 0 || c.rxPackets !== frames || c.txPackets !== frames) {
    throw new Error(`switch bench lost frames: ${JSON.stringify(c.snapshot())} expected ${frames}`);
  }
  const sorted = times.subarray(0, rounds).sort();
  return {
    mpps: frames / procMs / 1e3,
    p50: round / sorted[rounds >> 1] / 1e3,
    wallMpps: frames / wallMs / 1e3,
    frames,
  };
}



/** Run the C anchor on one case: { mpps, p50 } or an error string. */
function runAnchor(bin: string, size: number, macs: number, o: Required<SwitchBenchOptions>): { mpps: number; p50: number } | string {
  const args = [
    `--seconds=${o.seconds}`,
    `--ports=${o.ports}`,
    `--frames=${o.framesPerPort}`,
    `--batch=${o.batch}`,
    `--sizes=${size}`,
    `--macs=${macs}`,
  ];
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return `cswitch failed: ${r.error?.message ?? r.stderr.trim()}`;
  const out = JSON.parse(r.stdout) as Array<{ size: number; macs: number; mpps: number; p50: number }>;
  return { mpps: out[0].mpps, p50: out[0].p50 };
}

export async function benchSwitch(opts: SwitchBenchOptions = {}): Promise<Row[]> {
  const o: Required<SwitchBenchOptions> = {
    seconds: opts.seconds ?? 1,
    ports: opts.ports ?? 4,
    framesPerPort: opts.framesPerPort ?? 512,
    batch: opts.batch ?? 256,
    sizes: opts.sizes ?? [64, 1500],
    macs: opts.macs ?? [16, 4096],
    anchor: opts.anchor ?? true,
    verbose: opts.verbose ?? false,
  };
  // warm up the JIT on a short run so the first measured case is not penalised
  runCase(64, 16, { ...o, seconds: Math.min(0.3, o.seconds) });
  const built = o.anchor ? buildReference('cswitch') : { error: 'anchor disabled' };
  const rows: Row[] = [];
  for (const size of o.sizes) {
    for (const macs of o.macs) {
      const r = runCase(size, macs, o);
      // the C twin runs right after, under the same conditions
      const a = 'bin' in built ? runAnchor(built.bin, size, macs, o) : built.error;
      const row: Row = {
        name: `switch ${size}B ${macs} MACs ${o.ports} ports`,
        value: round2(r.mpps),
        unit: 'Mpps',
      };
      let note = `median round ${round2(r.p50)}`;
      if (typeof a === 'string') note += `; anchor: ${a}`;
      else {
        row.anchor = round2(a.mpps);
        row.ratio = round2(r.mpps / a.mpps);
        note += ` (C ${round2(a.p50)})`;
      }
      row.note = `${note}; ${round2(r.wallMpps)} incl. recycling`;
      if (row.anchor !== undefined) row.anchorName = 'C switch (cc -O2)';
      if (o.verbose) process.stderr.write(`${row.name}: ${row.value} Mpps, C ${row.anchor ?? '-'} (${row.note})\n`);
      rows.push(row);
    }
  }
  return rows;
}

// run directly: node dist/bench/switch.js [seconds]
if (isMain(import.meta.url)) printRows(benchSwitch({ seconds: Number(process.argv[2] ?? 1), verbose: true }));
