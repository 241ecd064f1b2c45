/**
 * End-to-end benchmarks: the same traffic between two namespaces through
 *   1. the Linux kernel bridge over veth pairs (anchor),
 *   2. a minimal C forwarder between two TAPs (bench/reference/tapfwd.c, anchor),
 *   3. usernet (a real daemon, two containers on one bridge network),
 * in one run: iperf3 TCP throughput and ping RTT. The three are measured in
 * interleaved rounds so that drift of a shared machine hits all alike;
 * RTTs are medians of per-reply times. Every namespace made here has a
 * unique prefix and is removed at the end, also on failure; every process
 * is stopped by its pid.
 */
import type { ChildProcess } from 'node:child_process';
import { DaemonLab, uniquePrefix } from '../src/lab/lab.js';
import { kernelBridge, kernelNat, tapForwarder, twoContainers, UPLINK_ARGS, uplinkOutside } from './lab-setups.js';
import { addNs, floodPing, iperf, pingTimes, removeNetns, stop, summarize, type IperfResult, type Pair } from './lab-util.js';
import type { Row } from './table.js';

export interface E2eOptions {
  seconds?: number;
  pings?: number;
  /** interleaved rounds (kernel, C, usernet, kernel, C, usernet, …) */
  rounds?: number;
}

type Setup = 'kernel' | 'cfwd' | 'usernet' | 'busy' | 'knat' | 'unat';
const SETUPS: readonly Setup[] = ['kernel', 'cfwd', 'usernet', 'busy', 'knat', 'unat'];
/** the busy-poll window of the second usernet daemon */
const BUSY_POLL_MS = 10;

export async function benchE2e(opts: E2eOptions = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 5;
  const pings = opts.pings ?? 1200;
  const rounds = opts.rounds ?? 3;
  const prefix = uniquePrefix('be');
  const procs: ChildProcess[] = [];
  const lab = new DaemonLab('bu');
  const busyLab = new DaemonLab('bp');
  const natLab = new DaemonLab('bn');
  natLab.daemonArgs = UPLINK_ARGS;
  busyLab.daemonArgs = ['--busy-poll', String(BUSY_POLL_MS)];
  const mkns = (n: string) => {
    const name = prefix + n;
    addNs(name);
    return name;
  };
  const pairs = {} as Record<Setup, Pair>;
  const rtt: Record<Setup, number[]> = { kernel: [], cfwd: [], usernet: [], busy: [], knat: [], unat: [] };
  const runs: Record<Setup, IperfResult[]> = { kernel: [], cfwd: [], usernet: [], busy: [], knat: [], unat: [] };
  try {
    // 1. kernel bridge over veth
    pairs.kernel = kernelBridge(mkns, 'k', '10.123.0');
    // 2. the minimal C forwarder between two TAPs
    pairs.cfwd = await tapForwarder(mkns, procs, 'c', '10.124.0', false, 'C forwarder');
    // 3. usernet: a real daemon, two containers on one bridge network
    pairs.usernet = await twoContainers(lab, '10.125.0', 'usernet');
    // 4. usernet with adaptive busy-polling
    pairs.busy = await twoContainers(busyLab, '10.126.0', 'usernet busy-poll');
    // 5. kernel NAT: container → a router namespace doing nftables MASQUERADE → outside
    pairs.knat = kernelNat(mkns, 'n', '10.130.0');
    // 6. usernet NAT: a container → usernet's masquerade → the uplink TAP, whose kernel side is in an outside namespace
    {
      await natLab.start();
      const o = uplinkOutside(natLab, mkns, 'uo');
      natLab.ok('network', 'create', '--subnet', '10.131.0.0/24', 'bench');
      natLab.ok('run', '--name', 'c1', '--network', 'bench');
      pairs.unat = { name: 'usernet NAT', client: natLab.prefix + 'c1', server: o, serverIp: '192.0.2.1' };
    }
    // warm-up, the same for all: ARP caches, and usernet's JIT (a daemon that serves traffic is warm)
    for (const k of SETUPS) floodPing(pairs[k], 20000);
    for (let round = 0; round < rounds; round++) {
      for (const k of SETUPS) rtt[k].push(...pingTimes(pairs[k], Math.ceil(pings / rounds)));
      for (const k of SETUPS) runs[k].push(await iperf(pairs[k], seconds));
    }
  } finally {
    for (const p of procs) await stop(p);
    await lab.cleanup();
    await busyLab.cleanup();
    await natLab.cleanup();
    removeNetns(prefix);
  }
  const { g, t } = summarize(runs, rtt);
  const tcp = `iperf3 TCP ${seconds}s ×${rounds} (median)`;
  const png = `ping RTT p50 (${pings} pings)`;
  return [
    { name: tcp, value: g('usernet'), unit: 'Gbit/s', anchorName: 'C TAP forwarder (no offloads)', anchor: g('cfwd'), ratio: g('usernet') / g('cfwd'), note: 'usernet has TAP offloads (issue 12), this tapfwd none: see --only offload for tapfwd --vnet' },
    { name: tcp, value: g('usernet'), unit: 'Gbit/s', anchorName: 'kernel bridge (veth)', anchor: g('kernel'), ratio: g('usernet') / g('kernel'), note: 'both with TSO/GSO (usernet: TAP offloads)' },
    {
      name: png,
      value: t('usernet'),
      unit: 'µs',
      anchorName: 'C TAP forwarder (no offloads)',
      anchor: t('cfwd'),
      ratio: t('usernet') / t('cfwd'),
      note: `added ${(t('usernet') - t('cfwd')).toFixed(1)} µs (target ≤ +20 µs)`,
    },
    { name: png, value: t('usernet'), unit: 'µs', anchorName: 'kernel bridge (veth)', anchor: t('kernel'), ratio: t('usernet') / t('kernel') },
    {
      name: `${tcp}, --busy-poll ${BUSY_POLL_MS}`,
      value: g('busy'),
      unit: 'Gbit/s',
      anchorName: 'C TAP forwarder (no offloads)',
      anchor: g('cfwd'),
      ratio: g('busy') / g('cfwd'),
    },
    {
      name: `${png}, --busy-poll ${BUSY_POLL_MS}`,
      value: t('busy'),
      unit: 'µs',
      anchorName: 'C TAP forwarder (no offloads)',
      anchor: t('cfwd'),
      ratio: t('busy') / t('cfwd'),
      note: `added ${(t('busy') - t('cfwd')).toFixed(1)} µs; one core busy while traffic flows`,
    },
    { name: `${tcp}, container → outside via NAT`, value: g('unat'), unit: 'Gbit/s', anchorName: 'C TAP forwarder (no offloads)', anchor: g('cfwd'), ratio: g('unat') / g('cfwd'), note: 'usernet has TAP offloads (issue 12), this tapfwd none: see --only offload for tapfwd --vnet' },
    {
      name: `${tcp}, container → outside via NAT`,
      value: g('unat'),
      unit: 'Gbit/s',
      anchorName: 'kernel router ns, nft masquerade',
      anchor: g('knat'),
      ratio: g('unat') / g('knat'),
      note: 'both with TSO/GSO (usernet: TAP offloads)',
    },
    { name: `${png}, container → outside via NAT`, value: t('unat'), unit: 'µs', anchorName: 'kernel router ns, nft masquerade', anchor: t('knat'), ratio: t('unat') / t('knat') },
  ];
}
