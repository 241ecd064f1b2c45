/**
 * `npm run bench`: every benchmark beside its anchor, one table.
 *   --quick      shorter runs (for a smoke check)
 *   --only NAME  switch | nat | e2e | compose | overlay | seal | parent | robustness | latency | offload
 * offload (issue 12's table) also takes:
 *   --seconds N  seconds per iperf3 run (default 5; --quick 2)
 *   --rounds N   interleaved rounds (default 2; --quick 1)
 *   --verbose    progress on stderr
 */
import { isRoot } from '../src/lab/lab.js';
import { benchCompose } from './compose.js';
import { benchE2e } from './e2e.js';
import { benchLatency } from './latency.js';
import { benchNat } from './nat.js';
import { benchOffload } from './offload.js';
import { benchOverlay } from './overlay.js';
import { benchParent } from './parent.js';
import { benchRobustness, FULL, QUICK } from './robustness.js';
import { benchSeal } from './seal.js';
import { benchSwitch } from './switch.js';
import { renderTable, type Row } from './table.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  const num = (flag: string, dflt: number): number => {
    const v = args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : dflt;
    if (!(v > 0)) throw new Error(`${flag} wants a positive number`);
    return v;
  };
  const rows: Row[] = [];
  if (!only || only === 'switch') rows.push(...(await benchSwitch({ seconds: quick ? 0.3 : 1 })));
  if (!only || only === 'nat') rows.push(...(await benchNat({ seconds: quick ? 0.3 : 1 })));
  if (!only || only === 'e2e') {
    if (isRoot) rows.push(...(await benchE2e(quick ? { seconds: 2, pings: 300, rounds: 2 } : { seconds: 5, pings: 1200, rounds: 3 })));
    else process.stderr.write('*** SKIPPED end-to-end benchmarks: they need root (namespaces, TAPs) ***\n');
  }
  if (!only || only === 'compose') {
    if (isRoot) rows.push(...(await benchCompose({ seconds: quick ? 1 : 3 })));
    else process.stderr.write('*** SKIPPED compose/DNS benchmarks: they need root ***\n');
  }
  if (!only || only === 'overlay') {
    // the in-process part runs anywhere; the end-to-end part needs root and etcd (it says so when skipped)
    rows.push(...(await benchOverlay(quick ? { seconds: 0.3, reps: 2, e2eSeconds: 2, rounds: 2, pings: 200 } : { seconds: 1, reps: 3, e2eSeconds: 5, rounds: 3, pings: 600 })));
  }
  if (!only || only === 'seal') rows.push(...(await benchSeal(quick ? { seconds: 0.3, rounds: 2 } : { seconds: 1, rounds: 3 })));
  if (!only || only === 'parent') {
    // macvlan endpoint on a parent veth, and VMs attached by socket or tap (root; it says so when skipped)
    rows.push(...(await benchParent(quick ? { seconds: 1, rounds: 2, pings: 200, vmSeconds: 1, vmWarm: 0.5, vmRounds: 2 } : { seconds: 3, rounds: 3, pings: 600, vmSeconds: 1.5, vmWarm: 0.5, vmRounds: 6 })));
  }
  if (!only || only === 'robustness') {
    if (isRoot) rows.push(...(await benchRobustness(quick ? QUICK : FULL))); // SYN/MAC floods beside kernel anchors, and a soak
    else process.stderr.write('*** SKIPPED robustness benchmarks: they need root ***\n');
  }
  if ((!only || only === 'latency') && isRoot) rows.push(...(await benchLatency(quick ? { pings: 300, rounds: 2, idleSeconds: 5, fastPings: 1000, flood: 5000 } : {})));
  if (!only || only === 'offload') {
    // issue 12: every path beside its anchor, with the targets (root; it says so when skipped)
    const o = { seconds: num('--seconds', quick ? 2 : 5), rounds: num('--rounds', quick ? 1 : 2), verbose: args.includes('--verbose') };
    if (isRoot) rows.push(...(await benchOffload(o)));
    else process.stderr.write('*** SKIPPED offload benchmarks: they need root (namespaces, TAPs) ***\n');
  }
  process.stdout.write('\n' + renderTable(rows));
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
