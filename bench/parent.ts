/**
 * bench/parent — usernet endpoints on real interfaces: a macvlan endpoint
 * on a parent veth, and QEMU VMs attached to a bridge network. Root only;
 * each part beside its kernel anchor in the same run, in interleaved rounds.
 *
 * 1. macvlan. A DaemonLab whose namespace holds the parent `lan0`, a veth
 *    to `eth0` in a "lan" namespace holding the lan host 10.80.0.1/24; TSO,
 *    GSO and GRO off on both ends (usernet reads the parent with AF_PACKET,
 *    which takes no super-frames). A macvlan network on `-o parent=lan0`
 *    and one container `m1` on it. Anchor: a kernel macvlan device (mode
 *    bridge) on the same lan0, moved into a namespace of its own at
 *    10.80.0.200/24. iperf3 TCP from the endpoint to the lan host, `seconds`
 *    a round, in interleaved rounds (usernet, kernel, kernel with offloads,
 *    usernet, …): the two share lan0, so never at once. The second anchor
 *    turns TSO/GSO/GRO back on on both veth ends for its round only (the
 *    kernel macvlan inherits them from lan0) — the kernel as it runs by
 *    default, not a like-for-like path. Ping RTT p50 for usernet and the
 *    first anchor; the same warm-up for all (a flood ping).
 *
 * 2. VM attach. A second DaemonLab with a bridge network 10.81.0.0/24, one
 *    container `c1` as the receiver, and three VMs (QEMU; a Debian kernel
 *    and a busybox initramfs, src/lab/vm.ts) attached with --qemu-stream,
 *    --qemu-dgram and --iface (QEMU's own tap in the daemon's namespace,
 *    read with AF_PACKET). Anchor: a fourth VM on a QEMU tap enslaved to a
 *    kernel bridge, with a veth to a receiver namespace (10.82.0.1/24). The
 *    taps have vnet_hdr=off, so every guest has the same virtio-net without
 *    checksum or segmentation offloads (the socket backends have none, and
 *    AF_PACKET would drop the guest's TSO super-frames). The guests have only
 *    busybox: each runs `nc DST PORT < /dev/zero` whenever its receiver (a
 *    Python script, one per VM, in c1 or the anchor's namespace) says "go" on
 *    a long-polled control connection; the receiver drops the first
 *    `vmWarm` seconds, counts bytes for `vmSeconds`, then resets the
 *    connection. All four VMs boot at once and stay up (idle guests wait in
 *    a blocking read, not a poll loop), measured one at a time in
 *    interleaved rounds. QEMU runs under TCG when KVM does not work, and then
 *    the guest CPU is the bottleneck: absolute numbers are low, the ratios
 *    are what the rows compare — and on a shared 2-vCPU machine a TCG
 *    guest's rate swings by 2–3× from second to second, so there are more,
 *    shorter rounds than for iperf3, and every round is in the note
 *    (--verbose prints half-second rates).
 *
 * Every namespace carries a lab's unique prefix and is removed at the end,
 * also on failure; every process (daemons, receivers, iperf3, QEMU) is
 * stopped by its pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonLab, isRoot } from '../src/lab/lab.js';
import { bootVm, buildInitramfs, ensureVmAssets, killVms, virtioNic, vmAssets, vmMarker, vmSupport, type BootResult } from '../src/lab/vm.js';
import { ethtoolK, floodPing, inNs, ip, iperf, isMain, median, pingTimes, printRows, quietNs, removeNetns, round2, sleep, stop, summarize, type IperfResult, type Pair } from './lab-util.js';
import type { Row } from './table.js';

export interface ParentBenchOptions {
  /** macvlan: iperf3 seconds per round (default 3) */
  seconds?: number;
  /** macvlan: interleaved rounds (default 3) */
  rounds?: number;
  /** macvlan: pings per setup over all rounds (default 600) */
  pings?: number;
  /** VM: counted seconds per round (default 1.5) */
  vmSeconds?: number;
  /** VM: seconds of traffic dropped before counting (default 0.5) */
  vmWarm?: number;
  /** VM: interleaved rounds (default 6; the guests' rates swing a lot, so more and shorter rounds) */
  vmRounds?: number;
  verbose?: boolean;
  /** run the macvlan part (default true) */
  macvlan?: boolean;
  /** run the VM part (default true) */
  vm?: boolean;
}

function offloads(ns: string, dev: string, on: boolean): void {
  const v = on ? 'on' : 'off';
  ethtoolK(ns, dev, 'tso', v, 'gso', v, 'gro', v);
}

// ───────────────────────────── 1. macvlan ─────────────────────────────

const MV_SETUPS = ['usernet', 'kernel', 'kernelTso'] as const;
type MvSetup = (typeof MV_SETUPS)[number];

async function benchMacvlan(seconds: number, rounds: number, pings: number, say: (s: string) => void): Promise<Row[]> {
  const d = new DaemonLab('bp');
  const lan = `${d.prefix}lan`;
  const kns = `${d.prefix}kmv`;
  const runs: Record<MvSetup, IperfResult[]> = { usernet: [], kernel: [], kernelTso: [] };
  const rtt: Record<MvSetup, number[]> = { usernet: [], kernel: [], kernelTso: [] };
  try {
    ip('netns', 'add', d.hostNs);
    quietNs(lan);
    ip('-n', d.hostNs, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan);
    ip('-n', d.hostNs, 'link', 'set', 'lan0', 'up');
    ip('-n', lan, 'addr', 'add', '10.80.0.1/24', 'dev', 'eth0');
    ip('-n', lan, 'link', 'set', 'eth0', 'up');
    offloads(d.hostNs, 'lan0', false);
    offloads(lan, 'eth0', false);
    await d.start();
    d.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.80.0.0/24', '--gateway', '10.80.0.1', '-o', 'parent=lan0', 'mv');
    d.ok('run', '--name', 'm1', '--network', 'mv');
    // the anchor: a kernel macvlan on the same parent, in a namespace of its own
    quietNs(kns);
    ip('-n', d.hostNs, 'link', 'add', 'link', 'lan0', 'name', 'kmv', 'type', 'macvlan', 'mode', 'bridge');
    ip('-n', d.hostNs, 'link', 'set', 'kmv', 'netns', kns);
    ip('-n', kns, 'addr', 'add', '10.80.0.200/24', 'dev', 'kmv');
    ip('-n', kns, 'link', 'set', 'kmv', 'up');
    const pairs: Record<MvSetup, Pair> = {
      usernet: { name: 'usernet macvlan', client: `${d.prefix}m1`, server: lan, serverIp: '10.80.0.1' },
      kernel: { name: 'kernel macvlan', client: kns, server: lan, serverIp: '10.80.0.1' },
      kernelTso: { name: 'kernel macvlan, offloads on', client: kns, server: lan, serverIp: '10.80.0.1' },
    };
    for (const k of ['usernet', 'kernel'] as const) {
      const p = pairs[k];
      if (spawnSync(...inNs(p.client, ['ping', '-c', '3', '-i', '0.2', '-W', '1', p.serverIp])).status !== 0) throw new Error(`${p.name}: cannot reach the lan host`);
      floodPing(p, 5000, 60_000);
    }
    say('macvlan: warm');
    for (let round = 0; round < rounds; round++) {
      for (const k of MV_SETUPS) {
        if (k !== 'kernelTso') rtt[k].push(...pingTimes(pairs[k], Math.ceil(pings / rounds)));
        if (k === 'kernelTso') {
          offloads(d.hostNs, 'lan0', true);
          offloads(lan, 'eth0', true);
        }
        try {
          runs[k].push(await iperf(pairs[k], seconds));
        } finally {
          if (k === 'kernelTso') {
            offloads(d.hostNs, 'lan0', false);
            offloads(lan, 'eth0', false);
          }
        }
        say(`macvlan round ${round + 1} ${k}: ${runs[k].at(-1)!.gbps.toFixed(2)} Gbit/s`);
      }
    }
  } finally {
    await d.cleanup();
  }
  const { t, list, retr, tcpRow, rttRow } = summarize(runs, rtt);
  const tcp = `macvlan iperf3 TCP ${seconds}s ×${rounds} (median), endpoint → lan host`;
  const fair = 'kernel macvlan, same veth (offloads off)';
  return [
    tcpRow(tcp, 'usernet', 'kernel', fair, `rounds ${list('usernet')} (kernel ${list('kernel')}); retransmits ${retr('usernet')} (${retr('kernel')}); TSO/GSO/GRO off on the shared veth (usernet no longer needs it: see --only offload for offloads on)`),
    tcpRow(tcp, 'usernet', 'kernelTso', 'kernel macvlan, offloads on', `rounds ${list('kernelTso')}; TSO/GSO/GRO on on the veth (kernel default): super-frames, not like for like`),
    rttRow(`macvlan ping RTT p50 (${pings} pings), endpoint → lan host`, 'usernet', 'kernel', fair, `added ${(t('usernet') - t('kernel')).toFixed(1)} µs`),
  ];
}

// ───────────────────────────── 2. VM attach ─────────────────────────────

/**
 * One VM's receiver: `python3 -c RECEIVER HOST BASE`. Port BASE+1 is the
 * control port the guest long-polls (it gets "go" or "quit"), BASE the data
 * port. stdin: `go SECONDS WARM` → stdout `result BYTES SECONDS`; `quit`.
 * stdout also has `ready` once the guest first polls.
 */
const RECEIVER = String.raw`
import select, socket, struct, sys, time
host, base = sys.argv[1], int(sys.argv[2])
def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(8)
    return s
data, ctl = listener(base), listener(base + 1)
pending = None
said_ready = False
def out(*a):
    print(*a, flush=True)
def poll_ctl(timeout):
    global pending, said_ready
    r, _, _ = select.select([ctl], [], [], timeout)
    if r:
        if pending: pending.close()
        pending, _ = ctl.accept()
        if not said_ready:
            said_ready = True
            out('ready')
def tell(word):
    global pending
    end = time.time() + 60
    while pending is None and time.time() < end: poll_ctl(1)
    if pending is None: raise SystemExit('no control connection from the guest')
    pending.sendall(word.encode() + b'\n')
    pending.close()
    pending = None
out('listening')
buf = bytearray(1 << 20)
while True:
    r, _, _ = select.select([sys.stdin, ctl], [], [])
    if ctl in r: poll_ctl(0)
    if sys.stdin not in r: continue
    cmd = sys.stdin.readline().split()
    if not cmd or cmd[0] == 'quit':
        tell('quit')
        break
    secs, warm = float(cmd[1]), float(cmd[2])
    tell('go')
    data.settimeout(30)
    c, _ = data.accept()
    c.settimeout(10)
    t0 = time.time()
    while time.time() < t0 + warm:
        if c.recv_into(buf) == 0: raise SystemExit('guest closed early')
    n, t1 = 0, time.time()
    per = [0] * (int(secs * 2) + 1)
    while True:
        now = time.time()
        if now >= t1 + secs: break
        k = c.recv_into(buf)
        if k == 0: raise SystemExit('guest closed early')
        n += k
        per[min(int((now - t1) * 2), len(per) - 1)] += k
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()
    out('result', n, now - t1, ','.join(str(round(b * 16 / 1e6)) for b in per))
`;

/** The guest: address (DHCP or static, from `ubench=ADDR,DST,BASE` on the kernel command line), then serve the receiver. */
const GUEST = String.raw`
set -- $(sed -n 's/.*ubench=\([^ ]*\).*/\1/p' /proc/cmdline | tr ',' ' ')
how=$1 dst=$2 base=$3
if [ "$how" = dhcp ]; then
  udhcpc -i eth0 -n -q -t 10 -T 2 -s /usr/share/udhcpc/default.script >/dev/null || mark dhcp-failed
else
  ip addr add "$how" dev eth0
fi
mark addr $(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9./]*\) .*/\1/p')
while :; do
  c=$(nc $dst $((base + 1)) </dev/null 2>/dev/null)
  case "$c" in
    go*) nc $dst $base </dev/zero >/dev/null 2>&1 ;;
    quit*) break ;;
    *) sleep 1 ;;
  esac
done
mark done
`;

class Receiver {
  readonly proc: ChildProcess;
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  err = '';
  /** Mbit/s of each half second of the last round (for --verbose) */
  halves = '';
  constructor(
    readonly name: string,
    ns: string,
    host: string,
    base: number,
  ) {
    this.proc = spawn(...inNs(ns, ['python3', '-u', '-c', RECEIVER, host, String(base)]), { stdio: ['pipe', 'pipe', 'pipe'] });
    let partial = '';
    this.proc.stdout!.on('data', (b: Buffer) => {
      partial += b.toString();
      const ls = partial.split('\n');
      partial = ls.pop()!;
      this.lines.push(...ls);
      for (const w of this.waiters.splice(0)) w();
    });
    this.proc.stderr!.on('data', (b: Buffer) => (this.err += b.toString()));
    this.proc.on('exit', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** The next stdout line starting with `word` (waits up to `ms`). */
  async expect(word: string, ms: number): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(word));
      if (i >= 0) return this.lines.splice(0, i + 1).at(-1)!;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`receiver (${this.name}) exited: ${this.err.trim()}`);
      if (Date.now() >= end) throw new Error(`receiver (${this.name}): no "${word}" within ${ms} ms; stderr: ${this.err.trim()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(500, end - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** One round: Mbit/s counted over `seconds` after `warm`. */
  async measure(seconds: number, warm: number): Promise<number> {
    this.proc.stdin!.write(`go ${seconds} ${warm}\n`);
    const [, bytes, secs, halves] = (await this.expect('result', (seconds + warm) * 1000 + 60_000)).split(' ');
    this.halves = halves;
    return (Number(bytes) * 8) / Number(secs) / 1e6;
  }

  quit(): void {
    if (this.proc.exitCode === null) this.proc.stdin!.write('quit\n');
  }
}

const VM_SETUPS = ['stream', 'dgram', 'iface', 'kernel'] as const;
type VmSetup = (typeof VM_SETUPS)[number];

async function benchVm(seconds: number, warm: number, rounds: number, say: (s: string) => void): Promise<Row[]> {
  let sup = vmSupport();
  if (!sup.ok && vmAssets().missing.length) {
    ensureVmAssets();
    sup = vmSupport();
  }
  if (!sup.ok) {
    process.stderr.write(`*** SKIPPED VM attach benchmarks: ${sup.why} ***\n`);
    return [];
  }
  const v = new DaemonLab('bv');
  const kbr = `${v.prefix}kbr`;
  const krx = `${v.prefix}krx`;
  const tmp = mkdtempSync(join(tmpdir(), 'usernet-bvm-'));
  const receivers: Partial<Record<VmSetup, Receiver>> = {};
  const boots: Partial<Record<VmSetup, Promise<BootResult>>> = {};
  const mbps: Record<VmSetup, number[]> = { stream: [], dgram: [], iface: [], kernel: [] };
  let accel = sup.accel as string;
  try {
    await v.start();
    v.ok('network', 'create', '--subnet', '10.81.0.0/24', 'vmnet');
    v.ok('run', '--name', 'c1', '--network', 'vmnet');
    const c1: string = JSON.parse(v.ok('inspect', 'c1'))[0].NetworkSettings.Networks.vmnet.IPAddress;
    const streamSock = join(v.dir, 'vs.sock');
    const dgramSock = join(v.dir, 'vd.sock');
    v.ok('attach', 'vs', '--network', 'vmnet', '--qemu-stream', streamSock);
    v.ok('attach', 'vd', '--network', 'vmnet', '--qemu-dgram', dgramSock);
    ip('-n', v.hostNs, 'tuntap', 'add', 'vmtap0', 'mode', 'tap');
    ip('-n', v.hostNs, 'link', 'set', 'vmtap0', 'up');
    v.ok('attach', 'vi', '--network', 'vmnet', '--iface', 'vmtap0');
    // the anchor: QEMU's tap on a kernel bridge, a veth to the receiver's namespace
    quietNs(kbr);
    quietNs(krx);
    ip('-n', kbr, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', kbr, 'tuntap', 'add', 'ktap0', 'mode', 'tap');
    ip('-n', kbr, 'link', 'add', 'kv0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', krx);
    for (const dev of ['ktap0', 'kv0']) ip('-n', kbr, 'link', 'set', dev, 'master', 'br0', 'up');
    ip('-n', kbr, 'link', 'set', 'br0', 'up');
    ip('-n', krx, 'addr', 'add', '10.82.0.1/24', 'dev', 'eth0');
    ip('-n', krx, 'link', 'set', 'eth0', 'up');

    const rxNs: Record<VmSetup, [string, string]> = { stream: [`${v.prefix}c1`, c1], dgram: [`${v.prefix}c1`, c1], iface: [`${v.prefix}c1`, c1], kernel: [krx, '10.82.0.1'] };
    const base: Record<VmSetup, number> = { stream: 5100, dgram: 5110, iface: 5120, kernel: 5130 };
    for (const k of VM_SETUPS) {
      receivers[k] = new Receiver(k, rxNs[k][0], rxNs[k][1], base[k]);
      await receivers[k]!.expect('listening', 10_000);
    }
    const initrd = buildInitramfs(tmp, { script: GUEST });
    const kernel = vmAssets().assets!.kernel;
    const nic: Record<VmSetup, { netdev: string; mac: string; netns?: string; addr: string }> = {
      stream: { netdev: `stream,addr.type=unix,addr.path=${streamSock}`, mac: '52:54:00:81:00:01', addr: 'dhcp' },
      dgram: { netdev: `dgram,local.type=unix,local.path=${dgramSock}.vm,remote.type=unix,remote.path=${dgramSock}`, mac: '52:54:00:81:00:02', addr: 'dhcp' },
      iface: { netdev: 'tap,ifname=vmtap0,script=no,downscript=no,vnet_hdr=off', mac: '52:54:00:81:00:03', netns: v.hostNs, addr: 'dhcp' },
      kernel: { netdev: 'tap,ifname=ktap0,script=no,downscript=no,vnet_hdr=off', mac: '52:54:00:82:00:02', netns: kbr, addr: '10.82.0.2/24' },
    };
    const t0 = Date.now();
    for (const k of VM_SETUPS) {
      const n = nic[k];
      boots[k] = bootVm({ kernel, initrd, netdev: virtioNic(n.netdev, n.mac), netns: n.netns, timeoutMs: 600_000, append: `ubench=${n.addr},${rxNs[k][1]},${base[k]}` });
    }
    for (const k of VM_SETUPS) {
      const ready = receivers[k]!.expect('ready', 180_000).then(() => undefined);
      ready.catch(() => undefined); // awaited below unless the VM exits first
      const died = await Promise.race([ready, boots[k]!]);
      if (died) throw new Error(`VM (${k}) exited before it polled its receiver (code ${died.code}):\n${died.console.slice(-1500)}\n${died.stderr.slice(-500)}`);
    }
    say(`vm: 4 guests up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // warm-up, the same for all: one short round each (ARP, TCP, usernet's JIT)
    for (const k of VM_SETUPS) await receivers[k]!.measure(0.5, 0.5);
    for (let round = 0; round < rounds; round++) {
      for (const k of VM_SETUPS) {
        mbps[k].push(await receivers[k]!.measure(seconds, warm));
        say(`vm round ${round + 1} ${k}: ${mbps[k].at(-1)!.toFixed(1)} Mbit/s (half-seconds ${receivers[k]!.halves})`);
      }
    }
    say(`vm: usernet stats ${v.cli('stats').stdout.trim()}`);
    for (const k of VM_SETUPS) receivers[k]!.quit();
    const done = await Promise.race([Promise.all(VM_SETUPS.map((k) => boots[k]!)), sleep(30_000).then(() => undefined)]);
    if (done) {
      accel = done[0].accel;
      for (const [i, r] of done.entries()) if (vmMarker(r.console, 'done') === undefined) say(`vm ${VM_SETUPS[i]} did not finish cleanly`);
    }
  } finally {
    killVms();
    for (const r of Object.values(receivers)) await stop(r.proc);
    await v.cleanup();
    removeNetns(v.prefix);
    rmSync(tmp, { recursive: true, force: true });
  }
  const m = (k: VmSetup) => median(mbps[k]);
  const list = (k: VmSetup) => mbps[k].map((x) => x.toFixed(0)).join('/');
  const what = `VM → container TCP (busybox nc) ${seconds}s ×${rounds} (median)`;
  const how: Record<Exclude<VmSetup, 'kernel'>, string> = { stream: '--qemu-stream', dgram: '--qemu-dgram', iface: '--iface (QEMU tap)' };
  return (['stream', 'dgram', 'iface'] as const).map((k) => ({
    name: `${what}, ${how[k]}`,
    value: round2(m(k)),
    unit: 'Mbit/s',
    anchorName: 'QEMU tap on a kernel bridge',
    anchor: round2(m('kernel')),
    ratio: m(k) / m('kernel'),
    note: `rounds ${list(k)} (kernel ${list('kernel')}); QEMU ${accel === 'tcg' ? 'under TCG (no KVM): guest CPU-bound, absolute numbers low' : 'with KVM'}; no guest offloads (vnet_hdr=off)`,
  }));
}

export async function benchParent(opts: ParentBenchOptions = {}): Promise<Row[]> {
  if (!isRoot) {
    process.stderr.write('*** SKIPPED parent (macvlan) and VM attach benchmarks: they need root ***\n');
    return [];
  }
  const say = (s: string) => opts.verbose && process.stderr.write(`parent: ${s}\n`);
  const rows = opts.macvlan === false ? [] : await benchMacvlan(opts.seconds ?? 3, opts.rounds ?? 3, opts.pings ?? 600, say);
  if (opts.vm !== false) rows.push(...(await benchVm(opts.vmSeconds ?? 1.5, opts.vmWarm ?? 0.5, opts.vmRounds ?? 6, say)));
  return rows;
}

// run directly: node dist/bench/parent.js [--quick] [--no-macvlan] [--no-vm]
if (isMain(import.meta.url)) {
  const a = process.argv.slice(2);
  const quick = a.includes('--quick');
  const sizes = quick ? { seconds: 1, rounds: 2, pings: 200, vmSeconds: 1, vmWarm: 0.5, vmRounds: 2 } : {};
  printRows(benchParent({ ...sizes, verbose: true, macvlan: !a.includes('--no-macvlan'), vm: !a.includes('--no-vm') }));
}
