/**
 * bench/robustness — the lab under attack (issue 11), each measurement beside
 * its anchor in the same run:
 *
 * 1. SYN flood to a published port. A bounded spoofed SYN flood (syn_flood.py,
 *    sources that exist nowhere: the answers are blackholed, every answered
 *    SYN stays half-open) from an outside namespace to usernet's published
 *    port (uplink TAP; container `web` publishes 8080 → an echo server) and,
 *    right after, to the kernel anchor: a router namespace doing nft DNAT +
 *    masquerade to a server namespace over veth (the NAT bench's kernel
 *    router with a prerouting DNAT). During each flood, N new connections
 *    (connect + echo a line, within a timeout) spread over the flood: the
 *    share that got in. Then a second flood (other spoofed sources) while an
 *    iperf3 flow through the published port, started before it, runs: its
 *    throughput during the flood over before it. Both sides keep their
 *    default table size: usernet's conntrack 131072 flows, the kernel's
 *    nf_conntrack_max (the note gives both, and how full they got). A third
 *    setup, usernet with an 8192-flow conntrack, takes the same flood: its
 *    table fills, so early drop of unassured flows decides whether new
 *    connections get in (the kernel's table size is global and cannot be
 *    lowered from a namespace, so its anchor stays the default one).
 * 2. MAC flood. Container A on a usernet bridge sends 12,000 frames from
 *    random source MACs (more than the MAC table's 8192); then newcomer C
 *    joins; while B and C ping each other, A counts frames addressed to C's
 *    MAC that reach it (a leak: unicast flooded because C is unknown). The
 *    anchor is a kernel bridge in a namespace (veth ports, the bridge device
 *    as A's flood target, as usernet's gateway is): its fdb has no limit by
 *    default (fdb_max_learned 0), so it learns every flooded MAC instead (the
 *    note gives its fdb size).
 * 3. Soak (bench/robustness-soak.ts): rounds of SYN flood, MAC flood, ARP
 *    flood, malformed frames and bad API requests against one daemon while
 *    an established echo stream runs through its published port.
 *
 * Everything runs in namespaces made here (unique prefixes), removed at the
 * end, also on failure; every child is stopped (or killed) by its pid.
 */
import { spawnSync } from 'node:child_process';
import { DaemonLab, uniquePrefix } from '../src/lab/lab.js';
import { inNs, ip, isMain, printRows, quietNs, removeNetns, round2, sleep } from './lab-util.js';
import { connects, iperfIntervals, Kids, l2flood, macOf, neighMac, pingIn, kernelPublished, meanIn, SPOOF_NET2, synFlood, usernetPublished, type Target } from './robustness-lab.js';
import { benchSoak } from './robustness-soak.js';
import type { Row } from './table.js';

export interface RobustnessOptions {
  /** SYN flood: SYNs, their rate (a second) */
  synCount: number;
  synRate: number;
  /** new connections during the flood, and their timeout (s) */
  connects: number;
  connectTimeout: number;
  /** seconds of iperf3 before the flood */
  iperfBefore: number;
  /** MAC flood frames */
  macFrames: number;
  /** soak length in seconds */
  soakSeconds: number;
}

export const QUICK: RobustnessOptions = { synCount: 60_000, synRate: 30_000, connects: 30, connectTimeout: 2, iperfBefore: 1.5, macFrames: 12_000, soakSeconds: 30 };
export const FULL: RobustnessOptions = { synCount: 200_000, synRate: 50_000, connects: 50, connectTimeout: 2, iperfBefore: 2.5, macFrames: 12_000, soakSeconds: 300 };

const KERNEL_NAT = 'kernel router ns, nft DNAT+masq';
/** the small conntrack table of the third SYN-flood setup: a flood fills it, so early drop decides who gets in */
const SMALL_CT = 8192;
const log = (s: string) => process.stderr.write(`robustness: ${s}\n`);

/** one flood with new connections spread over it (starting 0.2 s in, ending 0.2 s before its nominal end) */
async function floodWithConnects(kids: Kids, t: Target, o: RobustnessOptions) {
  const secs = o.synCount / o.synRate;
  const flood = synFlood(kids, t, o.synCount, secs + 1.5, o.synRate);
  await sleep(200);
  const c = await connects(kids, t, o.connects, Math.max(0.2, secs - 0.4), o.connectTimeout);
  return { c, f: await flood };
}

/** iperf3 through the published port; a flood starts `before` s in: Gbit/s before and during it */
async function floodWithIperf(kids: Kids, t: Target, o: RobustnessOptions) {
  const secs = o.synCount / o.synRate;
  const t0 = Date.now();
  const run = iperfIntervals(kids, t, Math.ceil(o.iperfBefore + secs + 1), 0.25);
  await sleep(o.iperfBefore * 1000);
  const at = (Date.now() - t0) / 1000 - 0.05; // iperf3 counts from its connection, ~50 ms after the spawn
  const f = await synFlood(kids, t, o.synCount, secs + 1.5, o.synRate, SPOOF_NET2);
  const iv = await run;
  return { before: meanIn(iv, 0.5, at), during: meanIn(iv, at + 0.25, at + f.secs), f };
}

async function benchSynFlood(o: RobustnessOptions): Promise<Row[]> {
  const kids = new Kids();
  const lab = new DaemonLab('rbs');
  const small = new DaemonLab('rbt');
  const prefix = uniquePrefix('rbk');
  try {
    const u = await usernetPublished(lab, kids, '10.215.1');
    const k = await kernelPublished(prefix, kids, '10.215.2');
    const us = await usernetPublished(small, kids, '10.215.3', SMALL_CT);
    for (const t of [u, k, us]) {
      const c = await connects(kids, t, 3, 0.3, 2);
      if (c.ok !== 3) throw new Error(`${t.name}: the published port does not answer before any flood (${c.ok}/3)`);
    }
    const conn = { u: await floodWithConnects(kids, u, o), k: await floodWithConnects(kids, k, o), s: await floodWithConnects(kids, us, o) };
    type Ct = { flows: number; capacity: number; counters?: Record<string, number> };
    const ct = JSON.parse(lab.ok('stats', '--json')).conntrack as Ct;
    const sct = JSON.parse(small.ok('stats', '--json')).conntrack as Ct;
    const kct = (what: string) => spawnSync(...inNs(prefix + 'kr', ['cat', `/proc/sys/net/netfilter/nf_conntrack_${what}`]), { encoding: 'utf8' }).stdout.trim();
    // SYNs the kernel could not hand to usernet: the uplink TAP's queue (its kernel side is in the outside namespace) overflowed
    const tapDrops = spawnSync(...inNs(u.outside, ['cat', '/sys/class/net/unup0/statistics/tx_dropped']), { encoding: 'utf8' }).stdout.trim();
    const kCount = kct('count');
    const kMax = kct('max');
    log(`connects: usernet ${JSON.stringify(conn.u)}; kernel ${JSON.stringify(conn.k)}; small table ${JSON.stringify(conn.s)}; usernet conntrack ${JSON.stringify(ct)}; small ${JSON.stringify(sct)}; kernel ${kCount}/${kMax}`);
    const tp = { u: await floodWithIperf(kids, u, o), k: await floodWithIperf(kids, k, o) };
    log(`iperf: usernet ${JSON.stringify(tp.u)}; kernel ${JSON.stringify(tp.k)}`);
    const pct = (x: { ok: number; n: number }) => (100 * x.ok) / x.n;
    const [pu, pk, ps] = [pct(conn.u.c), pct(conn.k.c), pct(conn.s.c)];
    const keep = (x: { before: number; during: number }) => x.during / x.before;
    const fl = (f: { sent: number; secs: number }) => `${f.sent} SYNs in ${f.secs} s`;
    return [
      {
        name: `SYN flood → published port: new connects ok (${o.connects}, ≤ ${o.connectTimeout} s each)`,
        value: round2(pu),
        unit: '%',
        anchorName: KERNEL_NAT,
        anchor: round2(pk),
        ratio: pk > 0 ? pu / pk : undefined,
        note:
          `flood ${fl(conn.u.f)} (usernet), ${fl(conn.k.f)} (kernel); p50 connect+echo ${conn.u.c.p50_ms?.toFixed(0) ?? '-'} / ${conn.k.c.p50_ms?.toFixed(0) ?? '-'} ms; ` +
          `conntrack after it: usernet ${ct.flows}/${ct.capacity} (flows inserted ${ct.counters?.inserted ?? '?'}, uplink TAP queue drops ${tapDrops}, early drops ${ct.counters?.earlyDrop ?? '?'}), kernel ${kCount}/${kMax}`,
      },
      {
        name: `SYN flood → published port, usernet conntrack ${SMALL_CT} (fills): new connects ok`,
        value: round2(ps),
        unit: '%',
        anchorName: KERNEL_NAT,
        anchor: round2(pk),
        ratio: pk > 0 ? ps / pk : undefined,
        note:
          `flood ${fl(conn.s.f)}; p50 connect+echo ${conn.s.c.p50_ms?.toFixed(0) ?? '-'} ms; conntrack after it ${sct.flows}/${sct.capacity}, ` +
          `early drops ${sct.counters?.earlyDrop ?? '?'}, refused (full) ${sct.counters?.full ?? '?'}; anchor as above (its table cannot be made smaller from a namespace)`,
      },
      {
        name: 'SYN flood: established iperf3 via published port, during/before',
        value: round2(keep(tp.u)),
        unit: '×',
        anchorName: KERNEL_NAT,
        anchor: round2(keep(tp.k)),
        ratio: keep(tp.u) / keep(tp.k),
        note: `Gbit/s before → during: usernet ${tp.u.before.toFixed(2)} → ${tp.u.during.toFixed(2)}, kernel ${tp.k.before.toFixed(2)} → ${tp.k.during.toFixed(2)}; floods ${fl(tp.u.f)} / ${fl(tp.k.f)}`,
      },
      {
        name: 'SYN flood: established iperf3 via published port, during flood',
        value: round2(tp.u.during),
        unit: 'Gbit/s',
        anchorName: KERNEL_NAT,
        anchor: round2(tp.k.during),
        ratio: tp.u.during / tp.k.during,
        note: 'the flood generator, iperf3 and the forwarder share 2 cores',
      },
    ];
  } finally {
    await kids.stopAll();
    await lab.cleanup();
    await small.cleanup();
    removeNetns(prefix);
  }
}

async function floodOk(kids: Kids, ns: string, frames: number, dst: string): Promise<void> {
  const r = await l2flood(kids, ns, ['macflood', 'eth0', String(frames), dst], 30).done;
  if (r.code !== 0 || !r.out.includes(`sent ${frames}`)) throw new Error(`macflood in ${ns}: ${r.code} ${r.out}${r.err}`);
}

/** While B pings C (5) and C pings B (3), the frames to C's MAC that A captures: [leaked, pings answered]. */
async function newcomer(kids: Kids, a: string, b: string, c: string, bIp: string, cIp: string): Promise<[number, number]> {
  const cap = l2flood(kids, a, ['count', 'eth0', macOf(c), '4'], 4);
  await new Promise<void>((r) => cap.p.stdout!.on('data', (d) => String(d).includes('ready') && r()));
  const pings = pingIn(b, cIp, 5) + pingIn(c, bIp, 3);
  const res = await cap.done;
  const n = Number(res.out.replace('ready', '').trim());
  if (res.code !== 0 || !Number.isFinite(n)) throw new Error(`count in ${a}: ${res.out}${res.err}`);
  return [n, pings];
}

async function benchMacFlood(o: RobustnessOptions): Promise<Row[]> {
  const kids = new Kids();
  const lab = new DaemonLab('rbm');
  const prefix = uniquePrefix('rbb');
  try {
    // usernet: fa and fb on l2, the flood from fa to the gateway's MAC, then fc joins
    await lab.start();
    const ns = (n: string) => lab.prefix + n;
    lab.ok('network', 'create', '--subnet', '10.216.1.0/24', 'l2');
    lab.ok('run', '--name', 'fa', '--network', 'l2');
    lab.ok('run', '--name', 'fb', '--network', 'l2');
    if (pingIn(ns('fa'), '10.216.1.1', 2) < 1 || pingIn(ns('fb'), '10.216.1.1', 2) < 1) throw new Error('usernet: the gateway does not answer');
    await floodOk(kids, ns('fa'), o.macFrames, neighMac(ns('fa'), '10.216.1.1'));
    const mac = JSON.parse(lab.ok('stats', '--json')).networks.find((n: { name: string }) => n.name === 'l2').mac as Record<string, number>;
    lab.ok('run', '--name', 'fc', '--network', 'l2');
    const [uLeak, uPings] = await newcomer(kids, ns('fa'), ns('fb'), ns('fc'), '10.216.1.3', '10.216.1.4');

    // kernel: a bridge in a namespace, its device 10.216.2.1 (the flood's target, as the gateway is above)
    const br = prefix + 'kbr';
    quietNs(br);
    ip('-n', br, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', br, 'addr', 'add', '10.216.2.1/24', 'dev', 'br0');
    ip('-n', br, 'link', 'set', 'br0', 'up');
    const port = (n: string, i: number) => {
      const p = prefix + n;
      quietNs(p);
      ip('-n', br, 'link', 'add', `v${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p);
      ip('-n', br, 'link', 'set', `v${n}`, 'master', 'br0', 'up');
      ip('-n', p, 'addr', 'add', `10.216.2.${i}/24`, 'dev', 'eth0');
      ip('-n', p, 'link', 'set', 'eth0', 'up');
      return p;
    };
    const [ka, kb] = [port('ka', 2), port('kb', 3)];
    if (pingIn(ka, '10.216.2.1', 2) < 1 || pingIn(kb, '10.216.2.1', 2) < 1) throw new Error('kernel bridge: the bridge address does not answer');
    await floodOk(kids, ka, o.macFrames, neighMac(ka, '10.216.2.1'));
    const fdb = spawnSync(...inNs(br, ['bridge', 'fdb', 'show', 'br', 'br0']), { encoding: 'utf8' }).stdout.split('\n').filter((l) => l && !l.includes('permanent')).length; // prettier-ignore
    const kc = port('kc', 4);
    const [kLeak, kPings] = await newcomer(kids, ka, kb, kc, '10.216.2.3', '10.216.2.4');
    log(`mac flood: usernet leak ${uLeak} pings ${uPings}/8 mac ${JSON.stringify(mac)}; kernel leak ${kLeak} pings ${kPings}/8 fdb ${fdb}`);
    return [
      {
        name: `MAC flood (${o.macFrames} src MACs): newcomer's unicast seen by the attacker`,
        value: uLeak,
        unit: 'frames',
        anchorName: 'kernel bridge (ns, veth)',
        anchor: kLeak,
        ratio: kLeak > 0 ? uLeak / kLeak : undefined,
        note: `usernet: attacker's port held to ${mac.portLimit ?? '?'} MACs (limit hits ${mac.portLimitHits ?? '?'}), table ${mac.dynamic ?? '?'} dynamic + ${mac.static ?? '?'} pinned; kernel fdb learned ${fdb} (no limit by default)`,
      },
      {
        name: 'MAC flood: B↔C pings answered after it (5 + 3)',
        value: round2((100 * uPings) / 8),
        unit: '%',
        anchorName: 'kernel bridge (ns, veth)',
        anchor: round2((100 * kPings) / 8),
        ratio: kPings > 0 ? uPings / kPings : undefined,
      },
    ];
  } finally {
    await kids.stopAll();
    await lab.cleanup();
    removeNetns(prefix);
  }
}

export async function benchRobustness(o: RobustnessOptions): Promise<Row[]> {
  const rows: Row[] = [];
  rows.push(...(await benchSynFlood(o)));
  rows.push(...(await benchMacFlood(o)));
  rows.push(...(await benchSoak(o.soakSeconds)));
  return rows;
}

// run directly: node dist/bench/robustness.js [--quick]
if (isMain(import.meta.url)) printRows(benchRobustness(process.argv.includes('--quick') ? QUICK : FULL));
