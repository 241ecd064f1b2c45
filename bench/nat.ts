/**
 * bench/nat — in-process conntrack lookup + NAT rewrite throughput (Mpps),
 * and the memory of a table holding 100k flows.
 *
 * Setup per case: a Conntrack of the daemon's default capacity (131072)
 * holding N established masqueraded TCP flows (inside 172.18.x.y:port →
 * server:80/443, replies to the uplink address 192.168.1.2 and a mapped
 * port), and N prepared 64-byte frames (Ethernet + IPv4 + TCP + 10 data
 * bytes, correct checksums), one per flow, flows in a random order. The
 * frames pass through a pool of min(N, 4096) slots (a receive ring's worth,
 * warm in cache as after a device read): before each round the next frames
 * are copied in, outside the clock. A round is one pass over the pool's
 * frames, timed alone, doing what the router does for outbound traffic, in
 * batches of 64: check ethertype / IPv4 version+IHL, read proto, addresses
 * and ports into the batch's keys, Conntrack.lookupBulk(), then per frame
 * NatRewriter.translate() (addresses, source port, IP and TCP checksums
 * updated incrementally). value = frames / total timed time; the note adds
 * the median round's rate and the rate of the scalar path (one
 * Conntrack.lookup() a frame, no batch), which at 100k flows waits for every
 * cache miss in turn.
 *
 * Anchor: bench/reference/cnat.c — the same table layout (8-byte index
 * slots, 64-byte flow records), hash, probes, batch path, rewrite, frames,
 * flow set and order, built with `cc -O2` into build/cnat and run right
 * after each case (it prints JSON); --simple runs its scalar path.
 *
 * Memory row: a child process (node --expose-gc) measures its RSS before
 * creating a Conntrack of capacity 131072 and after inserting 100k flows;
 * cnat --rss does the same for the C table. The note gives the typed-array
 * bytes of the table.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FramePool } from '../src/dataplane/pool.js';
import { Conntrack, KEY_STRIDE } from '../src/nat/conntrack.js';
import { NatRewriter } from '../src/nat/nat.js';
import { rng } from '../src/lab/rng.js';
import { checksum, pseudoHeaderSum } from '../src/wire/checksum.js';
import { isMain, printRows, round2 } from './lab-util.js';
import { buildReference } from './reference.js';
import type { Row } from './table.js';


export interface NatBenchOptions {
  /** seconds of timed rounds per case (default 1) */
  seconds?: number;
  /** flow counts (default [1000, 100000]) */
  flows?: number[];
  /** run the C anchor (default true) */
  anchor?: boolean;
  /** print progress to stderr */
  verbose?: boolean;
}

const CAPACITY = 131072;
const SEED = 0x5eed;
const FRAME = 64;
const SLOT = 128;
const HEADROOM = 64;
const UPLINK = 0xc0a80102; // 192.168.1.2

/** Flow i: (src, sport, dst, dport, mapped port) — the C anchor builds the same. */
function flowOf(i: number): [number, number, number, number, number] {
  const src = (0xac120002 + (i & 0x3ff)) >>> 0; // 172.18.0.2 …
  const sport = 32768 + (i >>> 10);
  const dst = (0x5db8d800 + (i % 1021)) >>> 0; // 93.184.216.0 …
  const dport = (i & 1) === 0 ? 443 : 80;
  const mapped = 1024 + (i % 60000);
  return [src, sport, dst, dport, mapped];
}

function fillTable(ct: Conntrack, n: number): void {
  for (let i = 0; i < n; i++) {
    // flowOf(i), without the array
    const s = (0xac120002 + (i & 0x3ff)) >>> 0;
    const d = (0x5db8d800 + (i % 1021)) >>> 0;
    const dp = (i & 1) === 0 ? 443 : 80;
    const f = ct.create(6, s, 32768 + (i >>> 10), d, dp, d, dp, UPLINK, 1024 + (i % 60000), 0);
    if (f < 0) throw new Error(`nat bench: flow ${i} refused`);
    ct.seen(f, 0, 0x02, 60, 0);
    ct.seen(f, 1, 0x12, 60, 0);
    ct.seen(f, 0, 0x10, 60, 0);
  }
}

function writeFrame(b: Uint8Array, o: number, i: number): void {
  const [s, sp, d, dp] = flowOf(i);
  const f = [0x02, 0x42, 0x7e, 0x5c, 0x1a, 0x01, 0x02, 0x42, 0xac, 0x12, 0, 2, 0x08, 0x00];
  b.set(f, o);
  const l3 = o + 14;
  const ipH = [0x45, 0, 0, 50, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, s >>> 24, (s >>> 16) & 255, (s >>> 8) & 255, s & 255, d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255]; // prettier-ignore
  b.set(ipH, l3);
  const c = checksum(b, l3, 20);
  b[l3 + 10] = c >>> 8;
  b[l3 + 11] = c & 255;
  const l4 = l3 + 20;
  const tcp = [sp >>> 8, sp & 255, dp >>> 8, dp & 255, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0x50, 0x18, 0xfa, 0xf0, 0, 0, 0, 0];
  b.set(tcp, l4);
  for (let k = 0; k < 10; k++) b[l4 + 20 + k] = (i + k) & 255;
  const tc = checksum(b, l4, 30, pseudoHeaderSum(s, d, 6, 30));
  b[l4 + 16] = tc >>> 8;
  b[l4 + 17] = tc & 255;
}

/** One pass over the frames, scalar path: Conntrack.lookup() then translate() per frame. Returns frames translated. */
function natRound(pool: FramePool, ct: Conntrack, nat: NatRewriter, handles: Uint32Array, n: number): number {
  const bytes = pool.bytes;
  const view = pool.view;
  const offsets = pool.offsets;
  const lengths = pool.lengths;
  let ok = 0;
  for (let k = 0; k < n; k++) {
    const h = handles[k];
    const o = offsets[h] | 0;
    if (lengths[h] < 54 || view.getUint16(o + 12) !== 0x0800) continue;
    const l3 = o + 14;
    const vi = bytes[l3];
    if (vi >>> 4 !== 4 || (vi & 15) < 5) continue;
    const l4 = l3 + ((vi & 15) << 2);
    const ref = ct.lookup(bytes[l3 + 9], view.getUint32(l3 + 12), view.getUint16(l4), view.getUint32(l3 + 16), view.getUint16(l4 + 2)); // prettier-ignore
    if (ref < 0) continue;
    if (nat.translate(bytes, l3, ref >> 1, ref & 1)) ok++;
  }
  return ok;
}

/** packets per batch (the router takes batches from its rings) */
const BATCH = 64;
const keys = new Int32Array(BATCH * KEY_STRIDE); // KEY_STRIDE is 8

/** One pass, batch path (the measured one): parse a batch into keys, Conntrack.lookupBulk(), translate each. */
function natRoundBulk(pool: FramePool, ct: Conntrack, nat: NatRewriter, handles: Uint32Array, n: number): number {
  const bytes = pool.bytes;
  const view = pool.view;
  const offsets = pool.offsets;
  const lengths = pool.lengths;
  const kb = keys;
  let ok = 0;
  // (literals, not KEY_STRIDE: V8 reloads and TDZ-checks an imported
  // binding on every use)
  for (let base = 0; base < n; base += 64) {
    const end = Math.min(n, base + 64);
    let m = 0;
    for (let k = base; k < end; k++) {
      const h = handles[k];
      const o = offsets[h] | 0;
      if (lengths[h] < 54 || view.getUint16(o + 12) !== 0x0800) continue;
      const l3 = o + 14;
      const vi = bytes[l3];
      if (vi >>> 4 !== 4 || (vi & 15) < 5) continue;
      kb[m] = view.getInt32(l3 + 12);
      kb[m + 1] = view.getInt32(l3 + 16);
      kb[m + 2] = view.getInt32(l3 + ((vi & 15) << 2));
      kb[m + 3] = bytes[l3 + 9];
      kb[m + 7] = l3;
      m += 8;
    }
    ct.lookupBulk(kb, m >> 3);
    for (let b = 0; b < m; b += 8) {
      const ref = kb[b + 4];
      if (ref >= 0 && nat.translate(bytes, kb[b + 7], ref >> 1, ref & 1)) ok++;
    }
  }
  return ok;
}

interface CaseResult {
  mpps: number;
  p50: number;
  frames: number;
}

/** pool slots the frames go through (a receive ring's worth, warm in cache as after a device read) */
const POOL_FRAMES = 4096;

export function runCase(nFlows: number, seconds: number, bulk = true): CaseResult {
  const ct = new Conntrack({ capacity: CAPACITY, seed: SEED });
  fillTable(ct, nFlows);
  // one prepared frame per flow, flows in a random order
  const order = new Uint32Array(nFlows);
  for (let i = 0; i < nFlows; i++) order[i] = i;
  // mulberry32 (src/lab/rng.ts) as the raw uint32: the C anchor has the same, so both shuffle alike
  const rnd = rng(SEED);
  for (let i = nFlows - 1; i > 0; i--) {
    const j = (rnd() * 2 ** 32) % (i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const prepared = new Uint8Array(nFlows * FRAME);
  for (let k = 0; k < nFlows; k++) writeFrame(prepared, k * FRAME, order[k]);
  const prepared32 = new Int32Array(prepared.buffer);
  // they pass through a pool of POOL_FRAMES slots, loaded between rounds
  const F = Math.min(nFlows, POOL_FRAMES);
  const pool = new FramePool({ capacity: F, slotSize: SLOT, headroom: HEADROOM });
  const pool32 = new Int32Array(pool.buffer);
  const handles = new Uint32Array(F);
  for (let k = 0; k < F; k++) {
    handles[k] = pool.alloc();
    pool.lengths[handles[k]] = FRAME;
  }
  let next = 0;
  const load = (): void => {
    for (let k = 0; k < F; k++) {
      const dst = pool.offsets[handles[k]] >> 2;
      const src = next * (FRAME >> 2);
      for (let w = 0; w < FRAME >> 2; w++) pool32[dst + w] = prepared32[src + w];
      if (++next === nFlows) next = 0;
    }
  };
  const nat = new NatRewriter(pool, ct);
  const times = new Float64Array(1 << 16);
  let rounds = 0;
  let frames = 0;
  let ms = 0;
  const limit = seconds * 1000;
  while (ms < limit) {
    load();
    const t0 = performance.now();
    const ok = bulk ? natRoundBulk(pool, ct, nat, handles, F) : natRound(pool, ct, nat, handles, F);
    const dt = performance.now() - t0;
    if (ok !== F) throw new Error(`nat bench: ${ok} of ${F} frames translated`);
    ms += dt;
    if (rounds < times.length) times[rounds++] = dt;
    frames += F;
  }
  // spot-check a rewritten frame outside the clock
  load();
  natRound(pool, ct, nat, handles, 1);
  const o = pool.offsets[handles[0]] + 14;
  const b = pool.bytes;
  if (checksum(b, o, 20) !== 0 || ((b[o + 12] << 24) | (b[o + 13] << 16) | (b[o + 14] << 8) | b[o + 15]) >>> 0 !== UPLINK) {
    throw new Error('nat bench: bad rewrite');
  }
  const sorted = times.subarray(0, rounds).sort();
  return { mpps: frames / ms / 1e3, p50: F / sorted[rounds >> 1] / 1e3, frames };
}



/** Run cnat; its JSON (the first element when it prints a list) or an error string. */
function runAnchor(bin: string, args: string[]): Record<string, number> | string {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return `cnat failed: ${r.error?.message ?? r.stderr.trim()}`;
  const out = JSON.parse(r.stdout) as Record<string, number> | Array<Record<string, number>>;
  return Array.isArray(out) ? out[0] : out;
}

/** RSS growth (MB) of a fresh node process creating the table and inserting 100k flows. */
function measureRss(): { rssMB: number; tableMB: number } | string {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--rss-probe'], { encoding: 'utf8', timeout: 120_000 }); // prettier-ignore
  if (r.status !== 0) return `rss probe failed: ${r.stderr.trim()}`;
  return JSON.parse(r.stdout) as { rssMB: number; tableMB: number };
}

function rssProbe(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  // warm up (JIT, heap) on a small table, so what follows is the table alone
  fillTable(new Conntrack({ capacity: 4096, seed: SEED }), 4000);
  gc?.();
  const before = process.memoryUsage().rss;
  const ct = new Conntrack({ capacity: CAPACITY, seed: SEED });
  fillTable(ct, 100_000);
  gc?.();
  const after = process.memoryUsage().rss;
  process.stdout.write(JSON.stringify({ rssMB: (after - before) / 2 ** 20, tableMB: ct.tableBytes / 2 ** 20, size: ct.size }) + '\n');
}

export async function benchNat(opts: NatBenchOptions = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 1;
  const flows = opts.flows ?? [1000, 100_000];
  const built = (opts.anchor ?? true) ? buildReference('cnat') : { error: 'anchor disabled' };
  runCase(1000, Math.min(0.3, seconds)); // warm up the JIT (both paths)
  runCase(1000, Math.min(0.3, seconds), false);
  const rows: Row[] = [];
  for (const n of flows) {
    const r = runCase(n, seconds);
    const scalar = runCase(n, seconds / 2, false);
    // the C twin runs right after, under the same conditions
    const a = 'bin' in built ? runAnchor(built.bin, [`--seconds=${seconds}`, `--flows=${n}`]) : built.error;
    const as = 'bin' in built ? runAnchor(built.bin, [`--seconds=${seconds / 2}`, `--flows=${n}`, '--simple']) : built.error;
    const row: Row = { name: `nat lookup+translate 64B TCP ${n >= 1000 ? `${n / 1000}k` : n} flows`, value: round2(r.mpps), unit: 'Mpps' }; // prettier-ignore
    let note = `batch path (lookupBulk); median round ${round2(r.p50)}`;
    if (typeof a === 'string') note += `; anchor: ${a}`;
    else {
      row.anchor = round2(a.mpps);
      row.anchorName = 'C nat (cc -O2)';
      row.ratio = round2(r.mpps / a.mpps);
      note += ` (C ${round2(a.p50)})`;
    }
    note += `; one lookup() a frame: ${round2(scalar.mpps)}`;
    if (typeof as !== 'string') note += ` (C ${round2(as.mpps)})`;
    row.note = note;
    if (opts.verbose) process.stderr.write(`${row.name}: ${row.value} Mpps, C ${row.anchor ?? '-'} (${note})\n`);
    rows.push(row);
  }
  const m = measureRss();
  const ca = 'bin' in built ? runAnchor(built.bin, ['--rss']) : built.error;
  if (typeof m === 'string') rows.push({ name: 'RSS with 100k tracked flows', value: NaN, unit: 'MB', note: m });
  else {
    const row: Row = { name: 'RSS with 100k tracked flows', value: round2(m.rssMB), unit: 'MB', note: `table typed arrays ${round2(m.tableMB)} MB (capacity ${CAPACITY})` }; // prettier-ignore
    if (typeof ca !== 'string') {
      row.anchor = round2(ca.rssMB);
      row.anchorName = 'C table (same layout)';
      row.ratio = round2(m.rssMB / ca.rssMB);
    } else row.note += `; anchor: ${ca}`;
    rows.push(row);
  }
  return rows;
}

// run directly: node dist/bench/nat.js [seconds]   (--rss-probe: the memory child)
if (isMain(import.meta.url)) {
  if (process.argv[2] === '--rss-probe') rssProbe();
  else printRows(benchNat({ seconds: Number(process.argv[2] ?? 1), verbose: true }));
}
