/**
 * The overlay driver's options (`network create -d overlay -o KEY=VALUE`):
 *
 *   vni=N                24-bit VXLAN network id (default: the lowest free from 4096)
 *   vxlan_port=N         underlay UDP port (default 4789)
 *   peers=IP[,IP]        static VTEPs (no etcd needed; a Linux vxlan device works)
 *   encrypted            AES-GCM between usernet daemons (needs --cluster)
 *   key_rotation=SECONDS how often a fresh key is made (encrypted; default 43200)
 *   com.docker.network.driver.mtu=N  (default 1450, 1418 when encrypted)
 *
 * Docker's `com.docker.network.driver.overlay.vxlanid_list` carries the VNI
 * once assigned (it is what `network inspect` shows).
 */
import { isIp, parseIp } from '../services/ipam.js';
import { VNI_MAX, VXLAN_PORT } from '../wire/vxlan.js';
import { MTU_OPTION, OFFLOAD_OPTION, validateOffloadOption, type Network } from './records.js';

export { isEncrypted } from './records.js';

export const VNI_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';
export const FIRST_VNI = 4096;
export const DEFAULT_KEY_ROTATION_S = 43200;
const KNOWN = new Set(['vni', 'vxlan_port', 'peers', 'encrypted', 'key_rotation', MTU_OPTION, VNI_OPTION, OFFLOAD_OPTION]);

export function validateOverlayOptions(opts: Record<string, string>): void {
  for (const k of Object.keys(opts)) {
    if (!KNOWN.has(k)) throw new Error(`unknown option "${k}" for driver overlay (known: vni, vxlan_port, peers, encrypted, key_rotation, ${MTU_OPTION}, ${OFFLOAD_OPTION})`);
  }
  const int = (k: string, min: number, max: number): void => {
    const v = opts[k];
    if (v === undefined) return;
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`invalid option ${k}="${v}": must be an integer from ${min} to ${max}`);
  };
  int('vni', 1, VNI_MAX);
  int(VNI_OPTION, 1, VNI_MAX);
  int('vxlan_port', 1, 65535);
  int('key_rotation', 1, 31_536_000);
  int(MTU_OPTION, 68, 65535);
  validateOffloadOption(opts);
  if (opts.vni !== undefined && opts[VNI_OPTION] !== undefined && opts.vni !== opts[VNI_OPTION]) {
    throw new Error(`options vni and ${VNI_OPTION} disagree`);
  }
  if (opts.peers !== undefined) {
    const peers = opts.peers.split(',');
    for (const p of peers) if (!isIp(p.trim())) throw new Error(`invalid option peers="${opts.peers}": "${p}" is not an IPv4 address`);
  }
  if (opts.encrypted !== undefined && !['', 'true', 'false'].includes(opts.encrypted)) {
    throw new Error(`invalid option encrypted="${opts.encrypted}": give -o encrypted (or encrypted=true)`);
  }
}

export function overlayVni(n: Network): number {
  return Number(n.options[VNI_OPTION] ?? n.options.vni ?? 0);
}

export function overlayPort(n: Network): number {
  return Number(n.options.vxlan_port ?? VXLAN_PORT);
}

export function overlayPeers(n: Network): number[] {
  return (n.options.peers ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => parseIp(s));
}

export function keyRotationMs(n: Network): number {
  return Number(n.options.key_rotation ?? DEFAULT_KEY_ROTATION_S) * 1000;
}

/** The lowest VNI from FIRST_VNI that is in neither set. */
export function pickVni(used: ReadonlySet<number>): number {
  for (let v = FIRST_VNI; v <= VNI_MAX; v++) if (!used.has(v)) return v;
  throw new Error('no free VNI left');
}
