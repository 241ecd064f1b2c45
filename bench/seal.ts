/**
 * Encrypted overlay crypto (`npm run bench -- --only seal`): frames per
 * second for seal + open of 1400-byte (and 64-byte) inner frames in one
 * FramePool, in process (no sockets):
 *   - native batch: Sealer.sealBatch / Opener.openBatch (the seal addon, EVP
 *     contexts made once per key), 256 frames per call;
 *   - native per frame: seal() / open() one frame at a time (what the VTEP
 *     calls today);
 *   - the old path, kept here as the anchor: node:crypto createCipheriv /
 *     createDecipheriv per frame, header, key choice, sequence counter and
 *     replay window exactly as src/overlay/seal.ts had them before the addon;
 *   - a C program doing the same crypto work (bench/reference/cseal.c, EVP
 *     contexts once per key, libcrypto of the system), when `cc` and the
 *     OpenSSL headers are there.
 * Every round seals and then opens each frame (and checks the round trip
 * once per case); rounds alternate between the cases, the median counts.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FramePool } from '../src/dataplane/pool.js';
import { ROOT } from '../src/lab/lab.js';
import { KeyRing, OpenResult, Opener, ReplayTable, SEAL_HEADER_LEN, SEAL_OVERHEAD, SEAL_TAG_LEN, Sealer, VXLAN_FLAGS_ENCRYPTED } from '../src/overlay/seal.js';
import type { Row } from './table.js';

export interface SealBenchOptions {
  /** seconds per measured round (default 1) */
  seconds?: number;
  /** rounds per case (default 3) */
  rounds?: number;
  /** run the C anchor (default true) */
  anchor?: boolean;
  verbose?: boolean;
}

const FRAMES = 256;
const SIZES = [1400, 64];
const VNI = 0x123456;
const SENDER = 0x0a000001;
const TWO32 = 4294967296;

interface Bench {
  len: number;
  pool: FramePool;
  handles: Uint32Array;
  results: Uint8Array;
  keys: KeyRing;
  sealer: Sealer;
  opener: Opener;
  /** old path state */
  seq: number;
  replay: ReplayTable;
  now: number;
}

function setup(len: number): Bench {
  const pool = new FramePool({ capacity: FRAMES });
  const handles = new Uint32Array(FRAMES);
  const frame = new Uint8Array(len);
  for (let i = 0; i < len; i++) frame[i] = (i * 31 + 7) & 0xff;
  for (let i = 0; i < FRAMES; i++) handles[i] = pool.fromBytes(frame);
  const keys = new KeyRing();
  keys.set([{ id: 1, key: new Uint8Array(32).fill(0x5a), activeFrom: 0 }]);
  return { len, pool, handles, results: new Uint8Array(FRAMES), keys, sealer: new Sealer(), opener: new Opener(), seq: 0, replay: new ReplayTable(), now: 1 };
}

// ─────────── the old path: node:crypto, one cipher object per frame ───────────

function oldSeal(b: Bench, h: number, secret: KeyObject, keyId: number): void {
  const pool = b.pool;
  const off = pool.offsets[h];
  const len = pool.lengths[h];
  if (off - SEAL_HEADER_LEN < pool.slotStart(h) || off + len + SEAL_TAG_LEN > pool.slotEnd(h)) throw new Error('no room');
  const seq = ++b.seq;
  const hdr = off - SEAL_HEADER_LEN;
  const by = pool.bytes;
  const v = pool.view;
  by[hdr] = VXLAN_FLAGS_ENCRYPTED;
  by[hdr + 1] = by[hdr + 2] = by[hdr + 3] = 0;
  by[hdr + 4] = (VNI >>> 16) & 0xff;
  by[hdr + 5] = (VNI >>> 8) & 0xff;
  by[hdr + 6] = VNI & 0xff;
  by[hdr + 7] = 0;
  v.setUint32(hdr + 8, keyId);
  v.setUint32(hdr + 12, SENDER);
  v.setUint32(hdr + 16, Math.floor(seq / TWO32));
  v.setUint32(hdr + 20, seq >>> 0);
  const buf = pool.buffer;
  const cipher = createCipheriv('aes-256-gcm', secret, Buffer.from(buf, hdr + 12, 12), { authTagLength: SEAL_TAG_LEN });
  cipher.setAAD(Buffer.from(buf, hdr, SEAL_HEADER_LEN));
  const ct = cipher.update(Buffer.from(buf, off, len));
  cipher.final();
  by.set(ct, off);
  by.set(cipher.getAuthTag(), off + len);
  pool.offsets[h] = hdr;
  pool.lengths[h] = len + SEAL_OVERHEAD;
}

function oldOpen(b: Bench, h: number): number {
  const pool = b.pool;
  const off = pool.offsets[h];
  const len = pool.lengths[h];
  const v = pool.view;
  if (pool.bytes[off] !== VXLAN_FLAGS_ENCRYPTED) return OpenResult.notEncrypted;
  const keyId = v.getUint32(off + 8);
  const key = b.keys.get(keyId);
  if (key === null) return OpenResult.unknownKey;
  const sender = v.getUint32(off + 12);
  const seq = v.getUint32(off + 16) * TWO32 + v.getUint32(off + 20);
  if (!b.replay.check(sender, keyId, seq)) return OpenResult.replay;
  const n = len - SEAL_OVERHEAD;
  const ctOff = off + SEAL_HEADER_LEN;
  const buf = pool.buffer;
  const d = createDecipheriv('aes-256-gcm', key.secret, Buffer.from(buf, off + 12, 12), { authTagLength: SEAL_TAG_LEN });
  d.setAAD(Buffer.from(buf, off, SEAL_HEADER_LEN));
  d.setAuthTag(Buffer.from(buf, ctOff + n, SEAL_TAG_LEN));
  const pt = d.update(Buffer.from(buf, ctOff, n));
  try {
    d.final();
  } catch {
    return OpenResult.badTag;
  }
  b.replay.accept(sender, keyId, seq, b.now);
  pool.bytes.set(pt, ctOff);
  pool.offsets[h] = ctOff;
  pool.lengths[h] = n;
  return OpenResult.ok;
}

// ───────────────────────────── cases ─────────────────────────────

type Mode = 'batch' | 'single' | 'old';

/** One pass over the FRAMES frames: seal each, then open each. */
function pass(b: Bench, mode: Mode): void {
  const { pool, handles, keys } = b;
  if (mode === 'batch') {
    if (b.sealer.sealBatch(pool, handles, FRAMES, VNI, keys, SENDER, b.now, b.results) !== FRAMES) throw new Error('seal bench: sealBatch refused frames');
    if (b.opener.openBatch(pool, handles, FRAMES, keys, b.now, b.results) !== FRAMES) throw new Error('seal bench: openBatch refused frames');
  } else if (mode === 'single') {
    for (let i = 0; i < FRAMES; i++) if (!b.sealer.seal(pool, handles[i], VNI, keys, SENDER, b.now)) throw new Error('seal bench: seal refused');
    for (let i = 0; i < FRAMES; i++) if (b.opener.open(pool, handles[i], keys, b.now) !== OpenResult.ok) throw new Error('seal bench: open refused');
  } else {
    const key = keys.sendKey(b.now)!;
    for (let i = 0; i < FRAMES; i++) oldSeal(b, handles[i], key.secret, key.id);
    for (let i = 0; i < FRAMES; i++) if (oldOpen(b, handles[i]) !== OpenResult.ok) throw new Error('seal bench: old open refused');
  }
}

/** Seal+open pairs per second (millions) over `seconds`. */
function round(b: Bench, mode: Mode, seconds: number): number {
  let frames = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < seconds * 1000) {
    pass(b, mode);
    frames += FRAMES;
    t = performance.now();
  }
  return frames / ((t - t0) / 1000) / 1e6;
}

/** The frames still hold what they held before (the round trips are real). */
function checkIntact(b: Bench): void {
  const { pool, handles } = b;
  for (let i = 0; i < FRAMES; i++) {
    const h = handles[i];
    if (pool.lengths[h] !== b.len) throw new Error('seal bench: a frame changed length');
    const off = pool.offsets[h];
    for (let j = 0; j < b.len; j += 7) if (pool.bytes[off + j] !== ((j * 31 + 7) & 0xff)) throw new Error('seal bench: a frame came back different');
  }
}

function cAnchor(seconds: number, len: number): { mpps: number } | string {
  const src = join(ROOT, 'bench', 'reference', 'cseal.c');
  const bin = join(ROOT, 'build', 'cseal');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(ROOT, 'build'), { recursive: true });
    const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, src, '-lcrypto'], { encoding: 'utf8' });
    if (cc.status !== 0) return `cc -lcrypto failed: ${cc.error?.message ?? cc.stderr.trim()}`;
  }
  const r = spawnSync(bin, [`--seconds=${seconds}`, `--frames=${FRAMES}`, `--len=${len}`], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return `cseal failed: ${r.error?.message ?? r.stderr.trim()}`;
  return JSON.parse(r.stdout) as { mpps: number };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export async function benchSeal(opts: SealBenchOptions = {}): Promise<Row[]> {
  const rows: Row[] = [];
  for (const len of SIZES) rows.push(...benchSize(len, opts));
  if (opts.verbose) for (const row of rows) process.stderr.write(`${row.name}: ${row.value} ${row.unit} (${row.note})\n`);
  return rows;
}

function benchSize(len: number, opts: SealBenchOptions): Row[] {
  const seconds = opts.seconds ?? 1;
  const rounds = opts.rounds ?? 3;
  const cases: Mode[] = ['batch', 'single', 'old'];
  const benches = new Map(cases.map((m) => [m, setup(len)] as const));
  for (const m of cases) round(benches.get(m)!, m, Math.min(0.3, seconds)); // JIT warm-up
  for (const m of cases) checkIntact(benches.get(m)!);
  const got = new Map<Mode, number[]>(cases.map((m) => [m, []]));
  const cRuns: number[] = [];
  let cNote = opts.anchor === false ? 'C anchor disabled' : '';
  for (let r = 0; r < rounds; r++) {
    for (const m of cases) got.get(m)!.push(round(benches.get(m)!, m, seconds));
    if (opts.anchor !== false && cNote === '') {
      const c = cAnchor(seconds, len);
      if (typeof c === 'string') cNote = c;
      else cRuns.push(c.mpps);
    }
  }
  for (const m of cases) checkIntact(benches.get(m)!);
  const k = (mpps: number): number => Math.round(mpps * 1e4) / 10; // kpps, one decimal
  const batch = median(got.get('batch')!);
  const single = median(got.get('single')!);
  const old = median(got.get('old')!);
  const rows: Row[] = [
    {
      name: `overlay seal+open ${len}B, native batch vs node:crypto`,
      value: k(batch),
      unit: 'kpps',
      anchor: k(old),
      anchorName: 'node:crypto per frame (old)',
      ratio: batch / old,
      note: `${r3((batch * len * 8) / 1000)} Gbit/s each way; native one frame a call ${k(single)} kpps; ${FRAMES} frames a batch, median of ${rounds}`,
    },
  ];
  if (cRuns.length > 0) {
    const c = median(cRuns);
    rows.push({ name: `overlay seal+open ${len}B, native batch vs C`, value: k(batch), unit: 'kpps', anchor: k(c), anchorName: 'C EVP (cseal.c)', ratio: batch / c, note: 'same crypto work, libcrypto of the system' });
  } else rows.push({ name: `overlay seal+open ${len}B, C anchor`, value: NaN, unit: 'kpps', note: cNote });
  return rows;
}
