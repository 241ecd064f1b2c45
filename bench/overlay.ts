/**
 * bench/overlay — VXLAN overlay: the Vtep element in-process (Mpps), and
 * TCP/RTT between containers on two hosts through usernet.
 *
 * In-process (Vtep of src/overlay/vtep.ts, one plain network, VNI 4242):
 * M = 16 remote container MACs behind V = 4 remote VTEPs, installed as the
 * control plane does (setEndpoint: static entries; setFlood), and F = 1024
 * prepared 64-byte frames (Ethernet + IPv4 + TCP + 10 data bytes), in
 * pool slots of 2 KiB with 128 bytes of headroom (the daemon's pool).
 * - encap: local container → a remote MAC, on the network port's tx ring
 *   (what the switch sends to the tunnel); process() puts the outer
 *   IPv4/UDP/VXLAN packets on the tunnel port's tx ring.
 * - decap: VXLAN datagrams from the remote VTEPs to local containers on the
 *   tunnel port's rx ring, with the sender's address in the 8 bytes before
 *   each (as TunnelDevice leaves it: see senderOf); process() puts the inner
 *   frames on the network port's rx ring (learning each source MAC).
 * A round is one process() call over the F frames, timed alone. Between
 * rounds, outside the clock, each handle's offset and length are reset to
 * its prepared frame (encap prepends into the headroom and decap only
 * moves the offset, so the bytes stay valid) and it goes back on the input
 * ring; nothing is allocated. The counters are checked at the end (no
 * drops, every frame through). Each case runs `reps` interleaved chunks
 * (usernet, C, usernet, C, …) of seconds/reps each; value = the median
 * chunk's frames / process() time. The note adds the median round's rate
 * and the rate including the reset between rounds.
 *
 * Anchor: bench/reference/cvxlan.c — the same hot path in C (same pool,
 * rings, batches of 64, checks, counters, VTEP table and hash, flow hash,
 * outer headers with a computed IPv4 checksum, same frames and timing
 * rule), built with `cc -O2` into build/cvxlan.
 *
 * Encrypted rows (for information, no anchor, no target): the same on an
 * encrypted network (AES-256-GCM, src/overlay/seal.ts, a KeyRing with one
 * fresh key). Sealing rewrites the inner frame in place, so between rounds
 * the plaintext is copied back (outside the clock); for decap, each frame
 * is sealed afresh by a Sealer playing the remote VTEPs (new sequence
 * numbers, so the replay windows accept them), also outside the clock.
 *
 * End to end (root; etcd): a ClusterLab (src/lab/cluster-lab.ts): an
 * underlay bridge in its own namespace, etcd on it, two usernet hosts
 * (daemons with --cluster) at 198.18.0.1 and .2; an overlay network
 * 10.20.0.0/24 made on host 1, container `c1` on host 1 and `c2` on host 2.
 * Anchors on the same underlay bridge: two more namespaces at 198.18.0.51
 * and .52, each with a kernel `vxlan` device (VNI 4242, port 4789,
 * local/remote) enslaved to a kernel bridge with a veth to a "container"
 * namespace (10.30.0.1 and .2, MTU 1450 inside, as usernet's overlay);
 * and the same again at .53/.54 with TSO/GSO off on the containers' eth0
 * (TCP then sends MTU-sized packets, as it does into usernet's TAPs, which
 * have no offloads), so the second ratio compares per-packet paths.
 * iperf3 TCP (c1 → c2) for `seconds` and `pings` pings at 5 ms (split over
 * the rounds; usernet and the kernel pair with offloads), in interleaved
 * rounds (usernet, kernel, kernel without TSO/GSO, usernet, …) after the
 * same warm-up (a 5000-packet flood ping each); medians. Both
 * ends are alike on each side (usernet↔usernet, kernel↔kernel), so the
 * veth checksum issue of a kernel VXLAN sender to usernet (partial inner
 * checksums) does not arise. Everything is removed at the end, also on
 * failure (every namespace carries the lab's unique prefix; processes are
 * stopped by pid).
 */
import { spawnSync } from 'node:child_process';
import { FramePool } from '../src/dataplane/pool.js';
import { Port } from '../src/dataplane/port.js';
import type { Ring } from '../src/dataplane/ring.js';
import { ClusterLab } from '../src/lab/cluster-lab.js';
import { isRoot } from '../src/lab/lab.js';
import { KeyRing, randomKey, Sealer } from '../src/overlay/seal.js';
import { Vtep } from '../src/overlay/vtep.js';
import { checksum } from '../src/wire/checksum.js';
import { kernelVtep } from './lab-setups.js';
import { floodPing, inNs, iperf, isMain, median, pingTimes, poll, printRows, round2, summarize, type IperfResult, type Pair } from './lab-util.js';
import { buildReference } from './reference.js';
import type { Row } from './table.js';

export interface OverlayBenchOptions {
  /** seconds of process() time per in-process case (default 1) */
  seconds?: number;
  /** interleaved usernet/C chunks per in-process case (default 3) */
  reps?: number;
  /** end to end: iperf3 seconds per round (default 5) */
  e2eSeconds?: number;
  /** end to end: interleaved rounds (default 3) */
  rounds?: number;
  /** end to end: pings per setup, over all rounds (default 600) */
  pings?: number;
  /** run the end-to-end part (default: when root) */
  e2e?: boolean;
  verbose?: boolean;
}

// ───────────────────────────── in-process ─────────────────────────────

const VNI = 4242;
const UDP_PORT = 4789;
const LOCAL_IP = 0xc6120001; // 198.18.0.1
const SEED = 0x5eed;
const FRAME = 64;
const LOCALS = 16;
const FRAMES = 1024;
const MACS = 16;
const VTEPS = 4;
const GW_MAC = 0x02420a140001;
const remoteMac = (r: number): number => 0x02420a140100 + r;
const localMac = (l: number): number => 0x02420a140002 + l;
const remoteIp = (r: number): number => (0x0a140100 + r) >>> 0; // 10.20.1.r
const localIp = (l: number): number => (0x0a140002 + l) >>> 0; // 10.20.0.(l+2)
const vtepIp = (i: number): number => (0xc6120002 + i) >>> 0; // 198.18.0.(i+2)

type Mode = 'encap' | 'decap';

function w16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v & 255;
}
function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}
function writeMac(b: Uint8Array, o: number, mac: number): void {
  for (let i = 0; i < 6; i++) b[o + i] = Math.floor(mac / 2 ** (8 * (5 - i))) & 255;
}

/** A 64-byte Ethernet + IPv4 + TCP frame with 10 data bytes (IPv4 checksum set) — cvxlan writes the same. */
function writeInner(b: Uint8Array, o: number, dmac: number, smac: number, sip: number, dip: number, sport: number, dport: number, k: number): void {
  writeMac(b, o, dmac);
  writeMac(b, o + 6, smac);
  b[o + 12] = 0x08;
  b[o + 13] = 0x00;
  const ip = o + 14;
  b.fill(0, ip, ip + 40);
  b[ip] = 0x45;
  w16(b, ip + 2, 50);
  w16(b, ip + 4, k & 0xffff);
  b[ip + 6] = 0x40;
  b[ip + 8] = 64;
  b[ip + 9] = 6;
  w32(b, ip + 12, sip);
  w32(b, ip + 16, dip);
  w16(b, ip + 10, checksum(b, ip, 20));
  const tcp = ip + 20;
  w16(b, tcp, sport);
  w16(b, tcp + 2, dport);
  w32(b, tcp + 4, (k * 1000) >>> 0);
  b[tcp + 12] = 0x50;
  b[tcp + 13] = 0x18;
  w16(b, tcp + 14, 0xfaf0);
  for (let i = 0; i < 10; i++) b[tcp + 20 + i] = (k + i) & 255;
}

interface Case {
  mode: Mode;
  sealed: boolean;
  pool: FramePool;
  vtep: Vtep;
  tunnel: Port;
  port: Port;
  input: Ring;
  output: Ring;
  /** handles, and per handle its prepared frame's offset and length */
  handles: Uint32Array;
  base: Uint32Array;
  flen: number;
  /** sealed cases: each handle's plaintext inner frame (FRAME bytes at h * FRAME) */
  plain: Uint8Array | null;
  keys: KeyRing | null;
  sealer: Sealer | null;
  frames: number;
  now: number;
}

function makeCase(mode: Mode, sealed: boolean): Case {
  let ringSize = 2;
  while (ringSize < 2 * FRAMES) ringSize *= 2;
  const pool = new FramePool({ capacity: FRAMES + 64, slotSize: 2048, headroom: 128 });
  const tunnel = new Port(1, 'vtep:4789', ringSize);
  const port = new Port(2, 'ov:bench', ringSize);
  const vtep = new Vtep(pool, tunnel, { localIp: LOCAL_IP, udpPort: UDP_PORT, seed: SEED });
  let keys: KeyRing | null = null;
  if (sealed) {
    keys = new KeyRing();
    keys.set([{ id: 1, key: randomKey(), activeFrom: 0 }]);
  }
  vtep.addNetwork({ vni: VNI, port, gatewayIp: 0x0a140001, gatewayMac: GW_MAC, keys, sendKeys: null });
  for (let r = 0; r < MACS; r++) vtep.setEndpoint(VNI, remoteMac(r), remoteIp(r), vtepIp(r % VTEPS));
  vtep.setFlood(VNI, Array.from({ length: VTEPS }, (_, i) => vtepIp(i)));
  const handles = new Uint32Array(FRAMES);
  const base = new Uint32Array(pool.capacity);
  const plain = sealed ? new Uint8Array(pool.capacity * FRAME) : null;
  const b = pool.bytes;
  const flen = mode === 'decap' && !sealed ? FRAME + 8 : FRAME;
  for (let k = 0; k < FRAMES; k++) {
    const h = pool.alloc();
    handles[k] = h;
    const o = pool.offsets[h];
    base[h] = o;
    const l = k % LOCALS;
    if (mode === 'encap') {
      const r = (k * 7 + 3) % MACS;
      writeInner(b, o, remoteMac(r), localMac(l), localIp(l), remoteIp(r), 32768 + k, 5201, k);
    } else if (!sealed) {
      const r = k % MACS;
      w32(b, o - 8, vtepIp(r % VTEPS)); // the sender, as TunnelDevice leaves it
      w16(b, o - 4, UDP_PORT);
      w16(b, o - 2, 0);
      w32(b, o, 0x08000000); // VXLAN flags I
      w32(b, o + 4, VNI << 8);
      writeInner(b, o + 8, localMac(l), remoteMac(r), remoteIp(r), localIp(l), 5201, 32768 + k, k);
    } else {
      const r = k % MACS;
      writeInner(b, o, localMac(l), remoteMac(r), remoteIp(r), localIp(l), 5201, 32768 + k, k);
    }
    pool.lengths[h] = flen;
    if (plain) plain.set(b.subarray(o, o + FRAME), h * FRAME);
  }
  const input = mode === 'encap' ? port.tx : tunnel.rx;
  const output = mode === 'encap' ? tunnel.tx : port.rx;
  const c: Case = { mode, sealed, pool, vtep, tunnel, port, input, output, handles, base, flen, plain, keys, sealer: sealed ? new Sealer() : null, frames: 0, now: 1 };
  for (let k = 0; k < FRAMES; k++) load(c, handles[k]);
  return c;
}

/** Put handle h back on the input ring as its prepared frame (outside the clock). */
function load(c: Case, h: number): void {
  const pool = c.pool;
  const o = c.base[h];
  pool.offsets[h] = o;
  pool.lengths[h] = c.flen;
  if (c.plain !== null) {
    pool.bytes.set(c.plain.subarray(h * FRAME, h * FRAME + FRAME), o);
    if (c.mode === 'decap') {
      // the remote VTEP seals it (new sequence number), the tunnel device leaves the sender in front
      const r = (h % MACS) % VTEPS; // any remote VTEP will do: the sender only picks a replay window
      if (!c.sealer!.seal(pool, h, VNI, c.keys!, vtepIp(r), c.now)) throw new Error('overlay bench: seal failed');
      const s = pool.offsets[h] - 8;
      w32(pool.bytes, s, vtepIp(r));
      w16(pool.bytes, s + 4, UDP_PORT);
    }
  }
  c.input.push(h);
}

interface ChunkResult {
  mpps: number;
  p50: number;
  wall: number;
}

const times = new Float64Array(1 << 20); // per-round ms, preallocated
const tmp = new Uint32Array(4096);

/** Rounds of process() over the case's frames until `seconds` of process() time. */
function runChunk(c: Case, seconds: number): ChunkResult {
  const vtep = c.vtep;
  const output = c.output;
  let rounds = 0;
  let frames = 0;
  let procMs = 0;
  const limit = seconds * 1000;
  const wall0 = performance.now();
  while (procMs < limit) {
    const t0 = performance.now();
    vtep.process(c.now);
    const dt = performance.now() - t0;
    procMs += dt;
    if (rounds < times.length) times[rounds++] = dt;
    frames += FRAMES;
    c.now += 0.01;
    const n = output.popInto(tmp, tmp.length);
    if (n !== FRAMES) throw new Error(`overlay bench (${c.mode}${c.sealed ? ', sealed' : ''}): ${n} of ${FRAMES} frames came out`);
    for (let i = 0; i < n; i++) load(c, tmp[i]);
  }
  const wallMs = performance.now() - wall0;
  c.frames += frames;
  const sorted = times.subarray(0, rounds).sort();
  return { mpps: frames / procMs / 1e3, p50: FRAMES / sorted[rounds >> 1] / 1e3, wall: frames / wallMs / 1e3 };
}

/** The counters agree with the frames sent through, and an encapsulated frame looks right. */
function verify(c: Case): void {
  const t = c.tunnel.counters;
  const p = c.port.counters;
  const through = c.mode === 'encap' ? [p.txPackets, t.txPackets] : [t.rxPackets, p.rxPackets];
  if (t.drops !== 0 || p.drops !== 0 || through[0] !== c.frames || through[1] !== c.frames) {
    throw new Error(`overlay bench lost frames: tunnel ${JSON.stringify(t.snapshot())} port ${JSON.stringify(p.snapshot())} expected ${c.frames}`);
  }
  // one more frame alone, checked outside the clock
  const h = c.input.pop();
  while (!c.input.empty) c.input.pop();
  c.input.push(h);
  c.vtep.process(c.now);
  const out = c.output.pop();
  const o = c.pool.offsets[out];
  const b = c.pool.bytes;
  if (c.mode === 'encap') {
    const want = FRAME + 36 + (c.sealed ? 32 : 0);
    if (checksum(b, o, 20) !== 0 || c.pool.lengths[out] !== want || ((b[o + 22] << 8) | b[o + 23]) !== UDP_PORT) throw new Error('overlay bench: bad outer headers');
  } else if (c.pool.lengths[out] !== FRAME || b[o + 12] !== 0x08 || checksum(b, o + 14, 20) !== 0) throw new Error('overlay bench: bad inner frame');
}

function runAnchor(bin: string, mode: Mode, seconds: number): ChunkResult | string {
  const r = spawnSync(bin, [`--mode=${mode}`, `--seconds=${seconds}`, `--frames=${FRAMES}`, `--macs=${MACS}`, `--vteps=${VTEPS}`], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return `cvxlan failed: ${r.error?.message ?? r.stderr.trim()}`;
  return JSON.parse(r.stdout) as ChunkResult;
}

function benchInProcess(seconds: number, reps: number, verbose: boolean): Row[] {
  const built = buildReference('cvxlan');
  const rows: Row[] = [];
  const plainRate: Record<Mode, number> = { encap: NaN, decap: NaN };
  for (const mode of ['encap', 'decap'] as const) {
    const c = makeCase(mode, false);
    runChunk(c, Math.min(0.3, seconds)); // warm up the JIT on this path
    const ours: ChunkResult[] = [];
    const theirs: ChunkResult[] = [];
    let err = 'error' in built ? built.error : '';
    for (let i = 0; i < reps; i++) {
      ours.push(runChunk(c, seconds / reps));
      if ('bin' in built) {
        const a = runAnchor(built.bin, mode, seconds / reps);
        if (typeof a === 'string') err = a;
        else theirs.push(a);
      }
    }
    verify(c);
    const value = median(ours.map((r) => r.mpps));
    plainRate[mode] = value;
    const row: Row = { name: `vxlan ${mode} 64B (${MACS} MACs, ${VTEPS} VTEPs)`, value: round2(value), unit: 'Mpps' };
    let note = `target ≥ 10 Mpps; median round ${round2(median(ours.map((r) => r.p50)))}`;
    if (theirs.length === reps) {
      const a = median(theirs.map((r) => r.mpps));
      row.anchor = round2(a);
      row.anchorName = 'C vtep (cc -O2)';
      row.ratio = round2(value / a);
      note += ` (C ${round2(median(theirs.map((r) => r.p50)))})`;
    } else note += `; anchor: ${err}`;
    row.note = `${note}; ${round2(median(ours.map((r) => r.wall)))} incl. reset`;
    if (verbose) process.stderr.write(`${row.name}: ${row.value} Mpps, C ${row.anchor ?? '-'} (${row.note})\n`);
    rows.push(row);
  }
  for (const mode of ['encap', 'decap'] as const) {
    const c = makeCase(mode, true);
    runChunk(c, Math.min(0.1, seconds / 2));
    const r = runChunk(c, seconds / 2);
    verify(c);
    const row: Row = {
      name: `vxlan ${mode} 64B, encrypted (AES-256-GCM)`,
      value: round2(r.mpps),
      unit: 'Mpps',
      note: `for information; ${Math.round((100 * r.mpps) / plainRate[mode])}% of plain; native AES-GCM, an EVP context per key; median round ${round2(r.p50)}`,
    };
    if (verbose) process.stderr.write(`${row.name}: ${row.value} Mpps (${row.note})\n`);
    rows.push(row);
  }
  return rows;
}

// ───────────────────────────── end to end ─────────────────────────────

const SETUPS = ['usernet', 'kernel', 'knogso'] as const;
type Setup = (typeof SETUPS)[number];

async function benchE2e(seconds: number, rounds: number, pings: number, verbose: boolean): Promise<Row[]> {
  const lab = new ClusterLab(3);
  const say = (s: string) => verbose && process.stderr.write(`overlay e2e: ${s}\n`);
  const runs: Record<Setup, IperfResult[]> = { usernet: [], kernel: [], knogso: [] };
  const rtt: Record<Setup, number[]> = { usernet: [], kernel: [], knogso: [] };
  try {
    lab.setUp();
    await lab.startEtcd();
    const h1 = lab.addHost();
    const h2 = lab.addHost();
    await Promise.all([h1.start(), h2.start()]);
    say('daemons up');
    h1.ok('network', 'create', '-d', 'overlay', '--subnet', '10.20.0.0/24', 'bench');
    if (!(await poll(() => h2.cli('network', 'inspect', 'bench').code === 0, 10_000))) throw new Error('the overlay network did not reach host 2');
    h1.ok('run', '--name', 'c1', '--network', 'bench');
    h2.ok('run', '--name', 'c2', '--network', 'bench');
    const c2Ip: string = JSON.parse(h2.ok('inspect', 'c2'))[0].NetworkSettings.Networks.bench.IPAddress;
    // the anchors: pairs of kernel VTEPs on the same underlay bridge
    const P = lab.prefix;
    kernelVtep(lab, `${P}kh1`, `${P}kc1`, '198.18.0.51', '198.18.0.52', '10.30.0.1/24', false, VNI, UDP_PORT);
    kernelVtep(lab, `${P}kh2`, `${P}kc2`, '198.18.0.52', '198.18.0.51', '10.30.0.2/24', false, VNI, UDP_PORT);
    kernelVtep(lab, `${P}kh3`, `${P}kc3`, '198.18.0.53', '198.18.0.54', '10.31.0.1/24', true, VNI, UDP_PORT);
    kernelVtep(lab, `${P}kh4`, `${P}kc4`, '198.18.0.54', '198.18.0.53', '10.31.0.2/24', true, VNI, UDP_PORT);
    const pairs: Record<Setup, Pair> = {
      usernet: { name: 'usernet overlay', client: h1.prefix + 'c1', server: h2.prefix + 'c2', serverIp: c2Ip },
      kernel: { name: 'kernel vxlan', client: `${P}kc1`, server: `${P}kc2`, serverIp: '10.30.0.2' },
      knogso: { name: 'kernel vxlan, no TSO/GSO', client: `${P}kc3`, server: `${P}kc4`, serverIp: '10.31.0.2' },
    };
    for (const k of SETUPS) {
      const p = pairs[k];
      const ok = () => spawnSync(...inNs(p.client, ['ping', '-c', '1', '-W', '1', p.serverIp])).status === 0;
      if (!(await poll(ok, 15_000))) throw new Error(`${p.name}: ${p.client} cannot reach ${p.serverIp}`);
      // the same warm-up for all: ARP/FDB, and usernet's JIT (a daemon that serves traffic is warm)
      floodPing(p, 5000, 60_000);
    }
    say('warm');
    for (let round = 0; round < rounds; round++) {
      for (const k of SETUPS) {
        // RTT does not depend on TSO: pinged on the usernet and kernel pairs only
        if (k !== 'knogso') rtt[k].push(...pingTimes(pairs[k], Math.ceil(pings / rounds)));
        runs[k].push(await iperf(pairs[k], seconds));
        say(`round ${round + 1} ${k}: ${runs[k].at(-1)!.gbps.toFixed(2)} Gbit/s`);
      }
    }
  } finally {
    await lab.cleanup();
  }
  const { t, list, retr, tcpRow, rttRow } = summarize(runs, rtt);
  const tcp = `overlay iperf3 TCP ${seconds}s ×${rounds} (median), 2 hosts`;
  return [
    tcpRow(tcp, 'usernet', 'kernel', 'kernel vxlan + bridge', `rounds ${list('usernet')} (kernel ${list('kernel')}); retransmits ${retr('usernet')} (${retr('kernel')}); kernel: UDP GSO on the underlay; usernet: TAP offloads, one datagram per segment on the underlay`),
    tcpRow(tcp, 'usernet', 'knogso', 'kernel vxlan + bridge, no TSO/GSO', `rounds ${list('knogso')}, retransmits ${retr('knogso')}; TSO/GSO off in the containers: MTU-sized packets through vxlan`),
    rttRow(`overlay ping RTT p50 (${pings} pings), 2 hosts`, 'usernet', 'kernel', 'kernel vxlan + bridge', `added ${(t('usernet') - t('kernel')).toFixed(1)} µs (two usernet daemons on the path)`),
  ];
}

export async function benchOverlay(opts: OverlayBenchOptions = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 1;
  const verbose = opts.verbose ?? false;
  const rows = benchInProcess(seconds, opts.reps ?? 3, verbose);
  const e2e = opts.e2e ?? isRoot;
  if (!e2e) process.stderr.write(`*** SKIPPED overlay end-to-end benchmarks: ${isRoot ? 'disabled' : 'they need root (namespaces)'} ***\n`);
  else if (spawnSync('etcd', ['--version']).status !== 0) process.stderr.write('*** SKIPPED overlay end-to-end benchmarks: etcd is not installed (scripts/setup.sh) ***\n');
  else rows.push(...(await benchE2e(opts.e2eSeconds ?? 5, opts.rounds ?? 3, opts.pings ?? 600, verbose)));
  return rows;
}

// run directly: node dist/bench/overlay.js [seconds] [--no-e2e]
if (isMain(import.meta.url)) {
  const seconds = Number(process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 1);
  printRows(benchOverlay({ seconds, verbose: true, e2e: process.argv.includes('--no-e2e') ? false : undefined }));
}
