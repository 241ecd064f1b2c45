/**
 * The paths the end-to-end benchmarks (bench/e2e.ts, bench/offload.ts)
 * build side by side, each a Pair from a client to a server namespace:
 *   - kernelBridge: two namespaces on a kernel bridge over veth pairs;
 *   - tapForwarder: two namespaces joined by bench/reference/tapfwd
 *     between two TAPs (optionally --vnet: virtio-net headers + TSO);
 *   - twoContainers: a usernet daemon with a bridge network and c1, c2;
 *   - kernelNat: a namespace behind a router namespace doing nftables
 *     masquerade to an "outside" namespace at 192.0.2.1;
 *   - uplinkOutside: the outside namespace for a daemon started with
 *     UPLINK_ARGS (its uplink TAP moved there, at 192.0.2.1);
 *   - kernelVtep: one end of a kernel vxlan + bridge pair on a ClusterLab's
 *     underlay (bench/overlay.ts, bench/offload.ts).
 * Namespaces come from the caller's `mkns` (its unique prefix; it removes
 * them), processes go on the caller's `procs` (it stops them by pid).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import type { ClusterLab } from '../src/lab/cluster-lab.js';
import type { DaemonLab } from '../src/lab/lab.js';
import { ethtoolK, ip, poll, quietNs, type Pair } from './lab-util.js';
import { buildReference } from './reference.js';

/** Makes a namespace named by the caller's unique prefix + `suffix`; returns its name. */
export type Mkns = (suffix: string) => string;

/** `usernet daemon` options for an uplink TAP `unup0` at 192.0.2.2/24 (gateway 192.0.2.1): see uplinkOutside. */
export const UPLINK_ARGS = ['--uplink', 'tap:unup0,ip=192.0.2.2/24,gw=192.0.2.1'];

export function tapfwdBin(): string {
  const r = buildReference('tapfwd');
  if ('error' in r) throw new Error(`C forwarder: ${r.error}`);
  return r.bin;
}

/** Namespaces `tag`1 and `tag`2 (`net`.1 and .2/24) on a kernel bridge over veth (offloads as the kernel sets them: on). */
export function kernelBridge(mkns: Mkns, tag: string, net: string, name = 'kernel bridge'): Pair {
  const br = mkns(`${tag}br`);
  const c1 = mkns(`${tag}1`);
  const c2 = mkns(`${tag}2`);
  ip('-n', br, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', br, 'link', 'set', 'br0', 'up');
  for (const [ns, addr, veth] of [
    [c1, `${net}.1/24`, 'vk1'],
    [c2, `${net}.2/24`, 'vk2'],
  ]) {
    ip('-n', br, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', br, 'link', 'set', veth, 'master', 'br0', 'up');
    ip('-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  return { name, client: c1, server: c2, serverIp: `${net}.2` };
}

/** Namespaces `tag`1 and `tag`2 (`net`.1 and .2/24) joined by tapfwd (`vnet`: --vnet) running in namespace `tag`fw. */
export async function tapForwarder(mkns: Mkns, procs: ChildProcess[], tag: string, net: string, vnet: boolean, name: string): Promise<Pair> {
  const fwd = mkns(`${tag}fw`);
  const c1 = mkns(`${tag}1`);
  const c2 = mkns(`${tag}2`);
  const args = [...(vnet ? ['--vnet'] : []), `${tag}a`, `${tag}b`];
  const p = spawn('nsenter', [`--net=/run/netns/${fwd}`, '--', tapfwdBin(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let ready = false;
  let err = '';
  p.stdout!.on('data', (d) => (ready ||= String(d).includes('ready')));
  p.stderr!.on('data', (d) => (err += d));
  if (!(await poll(() => ready || p.exitCode !== null, 5000, 50)) || !ready) throw new Error(`tapfwd ${args.join(' ')} did not start: ${err}`);
  for (const [tap, ns, addr] of [
    [`${tag}a`, c1, `${net}.1/24`],
    [`${tag}b`, c2, `${net}.2/24`],
  ]) {
    ip('-n', fwd, 'link', 'set', tap, 'netns', ns);
    ip('-n', ns, 'link', 'set', tap, 'name', 'eth0');
    ip('-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  return { name, client: c1, server: c2, serverIp: `${net}.2` };
}

/** Start `lab`'s daemon with a bridge network `net`.0/24 and containers c1 and c2 (`net`.3) on it: the pair c1 → c2. */
export async function twoContainers(lab: DaemonLab, net: string, name: string): Promise<Pair> {
  await lab.start();
  lab.ok('network', 'create', '--subnet', `${net}.0/24`, 'bench');
  lab.ok('run', '--name', 'c1', '--network', 'bench');
  lab.ok('run', '--name', 'c2', '--network', 'bench');
  return { name, client: lab.prefix + 'c1', server: lab.prefix + 'c2', serverIp: `${net}.3` };
}

/** Namespace `tag`c (`inside`.2/24) → router `tag`r (nftables masquerade) → outside `tag`o at 192.0.2.1. */
export function kernelNat(mkns: Mkns, tag: string, inside: string, name = 'kernel NAT'): Pair {
  const c = mkns(`${tag}c`);
  const r = mkns(`${tag}r`);
  const o = mkns(`${tag}o`);
  ip('-n', r, 'link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c);
  ip('-n', r, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o);
  for (const [ns, dev, addr] of [
    [c, 'eth0', `${inside}.2/24`],
    [r, 'in0', `${inside}.1/24`],
    [r, 'up0', '192.0.2.2/24'],
    [o, 'eth0', '192.0.2.1/24'],
  ]) {
    ip('-n', ns, 'addr', 'add', addr, 'dev', dev);
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
  ip('-n', c, 'route', 'add', 'default', 'via', `${inside}.1`);
  execFileSync('ip', ['netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  execFileSync('ip', ['netns', 'exec', r, 'nft', '-f', '-'], {
    input: 'table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n  oifname "up0" masquerade\n }\n}\n',
  });
  return { name, client: c, server: o, serverIp: '192.0.2.1' };
}

/** For a daemon started with UPLINK_ARGS: a namespace `suffix` holding its uplink TAP at 192.0.2.1/24 (the outside); its name. */
export function uplinkOutside(lab: DaemonLab, mkns: Mkns, suffix: string): string {
  const o = mkns(suffix);
  ip('-n', lab.hostNs, 'link', 'set', 'unup0', 'netns', o);
  ip('-n', o, 'addr', 'add', '192.0.2.1/24', 'dev', 'unup0');
  ip('-n', o, 'link', 'set', 'unup0', 'up');
  return o;
}

/**
 * A kernel VTEP namespace `host` at `addr` on the lab's underlay (vxlan vx0
 * to `remote`, bridged with a veth to namespace `ctr`, whose eth0 gets
 * `cidr` and MTU 1450); `noGso` turns TSO/GSO off on eth0, so TCP sends
 * MTU-sized packets as it does into usernet's TAPs without offloads.
 */
export function kernelVtep(lab: ClusterLab, host: string, ctr: string, addr: string, remote: string, cidr: string, noGso: boolean, vni = 4242, port = 4789): void {
  lab.addMember(host, addr);
  quietNs(ctr);
  ip('-n', host, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(vni), 'dstport', String(port), 'local', addr, 'remote', remote, 'dev', 'ul0');
  ip('-n', host, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', host, 'link', 'add', 'kv0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ctr);
  ip('-n', host, 'link', 'set', 'vx0', 'mtu', '1450', 'master', 'br0', 'up');
  ip('-n', host, 'link', 'set', 'kv0', 'mtu', '1450', 'master', 'br0', 'up');
  ip('-n', host, 'link', 'set', 'br0', 'up');
  ip('-n', ctr, 'link', 'set', 'eth0', 'mtu', '1450');
  ip('-n', ctr, 'addr', 'add', cidr, 'dev', 'eth0');
  ip('-n', ctr, 'link', 'set', 'eth0', 'up');
  if (noGso) ethtoolK(ctr, 'eth0', 'tso', 'off', 'gso', 'off');
}
