/**
 * The paths bench/offload.ts measures, built side by side in one lab
 * (every namespace under one unique prefix or a DaemonLab/ClusterLab's own;
 * cleanup() stops every process by pid and removes them all, also after a
 * failure). Daemons:
 *   main   `--offload on` (when the daemon has the flag) and an uplink TAP:
 *          bridge network 10.125.0.0/24 with c1, c2 (un: c1 → c2; unat:
 *          c1 → the uplink's outside namespace 192.0.2.1 through NAT), and a
 *          macvlan network on parent lan0, a veth to a "lan" namespace at
 *          10.80.0.1 with the kernel's default offloads (umv: m1 → lan host)
 *   off    `--offload off`: bridge network 10.127.0.0/24 with c1, c2 (unOff)
 *   h1, h2 a ClusterLab (etcd on an underlay bridge), `--offload on`: overlay
 *          networks 10.20.0.0/24 (uov: c1@h1 → c2@h2) and 10.21.0.0/24
 *          `-o encrypted` (uovEnc: c3@h1 → c4@h2)
 * Anchors: kbr kernel bridge over veth (10.123.0); cfwd tapfwd and cvnet
 * tapfwd --vnet (10.124.0, 10.128.0); knat a kernel router namespace with
 * nftables masquerade (10.130.0 → 192.0.2.1); kvx two kernel vxlan
 * namespaces bridged to veths, MTU 1450, offloads on (10.30.0, on the
 * cluster's underlay); kmv a kernel macvlan on the same lan0 (10.80.0.200).
 * A group that fails to build is recorded in `errors` and the rest goes on.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { ClusterLab } from '../src/lab/cluster-lab.js';
import { CLI, DaemonLab, uniquePrefix } from '../src/lab/lab.js';
import { kernelBridge, kernelNat, kernelVtep, tapForwarder, twoContainers, UPLINK_ARGS, uplinkOutside, type Mkns } from './lab-setups.js';
import { addNs, floodPing, inNs, ip, poll, quietNs, removeNetns, stop, type Pair } from './lab-util.js';

export const SETUP_NAMES = {
  un: 'usernet bridge',
  unOff: 'usernet bridge, --offload off',
  kbr: 'kernel bridge (veth)',
  cfwd: 'tapfwd',
  cvnet: 'tapfwd --vnet',
  unat: 'usernet NAT (uplink tap)',
  knat: 'kernel router ns, nft masquerade',
  uov: 'usernet overlay',
  uovEnc: 'usernet overlay -o encrypted',
  kvx: 'kernel vxlan + bridge',
  umv: 'usernet macvlan',
  kmv: 'kernel macvlan',
} as const;
export type Setup = keyof typeof SETUP_NAMES;

/** Whether `usernet daemon` takes --offload (the flag issue 12 adds). */
export function daemonHasOffloadFlag(): boolean {
  const r = spawnSync(process.execPath, [CLI, 'daemon', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return /--offload\b/.test(r.stdout ?? '');
}

export class OffloadLab {
  readonly prefix = uniquePrefix('bo');
  readonly procs: ChildProcess[] = [];
  readonly main = new DaemonLab('bom');
  readonly off = new DaemonLab('bof');
  readonly cluster = new ClusterLab(3);
  readonly pairs: Partial<Record<Setup, Pair>> = {};
  /** per setup, why it is missing or failed */
  readonly errors: Partial<Record<Setup, string>> = {};
  /** set on SIGINT/SIGTERM: build nothing more */
  interrupted = false;
  readonly mkns: Mkns = (suffix) => {
    const name = this.prefix + suffix;
    addNs(name);
    return name;
  };

  /** `offloadFlag`: the daemon has --offload (else the daemons run without it and there is no off-daemon). */
  constructor(
    readonly offloadFlag: boolean,
    private readonly say: (s: string) => void,
  ) {
    this.main.daemonArgs = [...UPLINK_ARGS, ...(offloadFlag ? ['--offload', 'on'] : [])];
    this.off.daemonArgs = ['--offload', 'off'];
  }

  /** Run `build`; if it throws, its setups get the error and are left out. */
  async group(setups: Setup[], build: () => Promise<void> | void): Promise<void> {
    try {
      if (this.interrupted) throw new Error('interrupted');
      await build();
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
      this.say(`setup of ${setups.join(', ')} failed: ${msg}`);
      for (const s of setups) {
        delete this.pairs[s];
        this.errors[s] = msg;
      }
    }
  }

  /** The main daemon with its bridge network and c1, c2. */
  async buildMain(): Promise<void> {
    await this.group(['un'], async () => {
      this.pairs.un = await twoContainers(this.main, '10.125.0', SETUP_NAMES.un);
    });
  }

  async buildRest(): Promise<void> {
    const m = this.main;
    await this.group(['kbr'], () => void (this.pairs.kbr = kernelBridge(this.mkns, 'k', '10.123.0', SETUP_NAMES.kbr)));
    await this.group(['cfwd'], async () => void (this.pairs.cfwd = await tapForwarder(this.mkns, this.procs, 'c', '10.124.0', false, SETUP_NAMES.cfwd)));
    await this.group(['cvnet'], async () => void (this.pairs.cvnet = await tapForwarder(this.mkns, this.procs, 'v', '10.128.0', true, SETUP_NAMES.cvnet)));
    await this.group(['knat'], () => void (this.pairs.knat = kernelNat(this.mkns, 'n', '10.130.0', SETUP_NAMES.knat)));
    if (this.pairs.un) {
      await this.group(['unat'], () => {
        const o = uplinkOutside(m, this.mkns, 'uo');
        this.pairs.unat = { name: SETUP_NAMES.unat, client: m.prefix + 'c1', server: o, serverIp: '192.0.2.1' };
      });
      await this.group(['umv', 'kmv'], () => this.buildMacvlan());
    } else for (const s of ['unat', 'umv', 'kmv'] as const) this.errors[s] = 'the main daemon did not start';
    if (this.offloadFlag) await this.group(['unOff'], async () => void (this.pairs.unOff = await twoContainers(this.off, '10.127.0', SETUP_NAMES.unOff)));
    else this.errors.unOff = 'the daemon has no --offload flag yet';
    await this.group(['uov', 'uovEnc', 'kvx'], () => this.buildOverlay());
  }

  /** lan0 in the main daemon's namespace, a veth to the lan host; usernet's macvlan m1 and a kernel macvlan on it. */
  private buildMacvlan(): void {
    const m = this.main;
    const lan = this.prefix + 'lan';
    const kns = this.prefix + 'kmv';
    quietNs(lan);
    ip('-n', m.hostNs, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan);
    ip('-n', m.hostNs, 'link', 'set', 'lan0', 'up');
    ip('-n', lan, 'addr', 'add', '10.80.0.1/24', 'dev', 'eth0');
    ip('-n', lan, 'link', 'set', 'eth0', 'up');
    m.ok('network', 'create', '-d', 'macvlan', '--subnet', '10.80.0.0/24', '--gateway', '10.80.0.1', '-o', 'parent=lan0', 'mv');
    m.ok('run', '--name', 'm1', '--network', 'mv');
    this.pairs.umv = { name: SETUP_NAMES.umv, client: m.prefix + 'm1', server: lan, serverIp: '10.80.0.1' };
    quietNs(kns);
    ip('-n', m.hostNs, 'link', 'add', 'link', 'lan0', 'name', 'kmv', 'type', 'macvlan', 'mode', 'bridge');
    ip('-n', m.hostNs, 'link', 'set', 'kmv', 'netns', kns);
    ip('-n', kns, 'addr', 'add', '10.80.0.200/24', 'dev', 'kmv');
    ip('-n', kns, 'link', 'set', 'kmv', 'up');
    this.pairs.kmv = { name: SETUP_NAMES.kmv, client: kns, server: lan, serverIp: '10.80.0.1' };
  }

  /** Two usernet hosts with etcd: a plain and an encrypted overlay network; a kernel vxlan pair on the same underlay. */
  private async buildOverlay(): Promise<void> {
    if (spawnSync('etcd', ['--version']).status !== 0) throw new Error('etcd is not installed (scripts/setup.sh)');
    const lab = this.cluster;
    lab.setUp();
    await lab.startEtcd();
    const flag = this.offloadFlag ? ['--offload', 'on'] : [];
    const h1 = lab.addHost(flag);
    const h2 = lab.addHost(flag);
    await Promise.all([h1.start(), h2.start()]);
    h1.ok('network', 'create', '-d', 'overlay', '--subnet', '10.20.0.0/24', 'ov');
    h1.ok('network', 'create', '-d', 'overlay', '--subnet', '10.21.0.0/24', '-o', 'encrypted', 'ovenc');
    for (const n of ['ov', 'ovenc']) {
      if (!(await poll(() => h2.cli('network', 'inspect', n).code === 0, 10_000))) throw new Error(`overlay network ${n} did not reach host 2`);
    }
    h1.ok('run', '--name', 'c1', '--network', 'ov');
    h2.ok('run', '--name', 'c2', '--network', 'ov');
    h1.ok('run', '--name', 'c3', '--network', 'ovenc');
    h2.ok('run', '--name', 'c4', '--network', 'ovenc');
    const addr = (c: string, n: string): string => JSON.parse(h2.ok('inspect', c))[0].NetworkSettings.Networks[n].IPAddress;
    this.pairs.uov = { name: SETUP_NAMES.uov, client: h1.prefix + 'c1', server: h2.prefix + 'c2', serverIp: addr('c2', 'ov') };
    this.pairs.uovEnc = { name: SETUP_NAMES.uovEnc, client: h1.prefix + 'c3', server: h2.prefix + 'c4', serverIp: addr('c4', 'ovenc') };
    const P = lab.prefix;
    kernelVtep(lab, `${P}kh1`, `${P}kc1`, '198.18.0.51', '198.18.0.52', '10.30.0.1/24', false);
    kernelVtep(lab, `${P}kh2`, `${P}kc2`, '198.18.0.52', '198.18.0.51', '10.30.0.2/24', false);
    this.pairs.kvx = { name: SETUP_NAMES.kvx, client: `${P}kc1`, server: `${P}kc2`, serverIp: '10.30.0.2' };
  }

  /** Every pair answers a ping (within 15 s), then the same warm-up for all (a flood ping: ARP/FDB, usernet's JIT). */
  async warmUp(): Promise<void> {
    for (const s of Object.keys(this.pairs) as Setup[]) {
      if (this.interrupted) return;
      const p = this.pairs[s]!;
      const ok = () => spawnSync(...inNs(p.client, ['ping', '-c', '1', '-W', '1', p.serverIp])).status === 0;
      if (!(await poll(ok, 15_000, 300))) {
        delete this.pairs[s];
        this.errors[s] = `${p.client} cannot reach ${p.serverIp}`;
        this.say(`${s}: ${this.errors[s]}`);
        continue;
      }
      floodPing(p, 5000, 60_000);
    }
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) await stop(p).catch(() => undefined);
    await this.main.cleanup().catch(() => undefined);
    await this.off.cleanup().catch(() => undefined);
    await this.cluster.cleanup().catch(() => undefined);
    removeNetns(this.prefix);
  }
}
