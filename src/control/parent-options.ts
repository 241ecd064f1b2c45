/**
 * Options of the drivers that put endpoints straight onto an existing
 * segment (`network create -d macvlan|ipvlan -o KEY=VALUE`):
 *
 *   parent=IFACE[.VLAN]     the interface in the daemon's namespace (required);
 *                           IFACE.VLAN: an 802.1Q sub-interface — frames carry
 *                           tag VLAN on IFACE and are untagged for endpoints
 *   macvlan_mode=bridge|private|vepa|passthru   (macvlan; default bridge)
 *   ipvlan_mode=l2|l3|l3s                       (ipvlan; default l2)
 *   com.docker.network.driver.mtu=N             (default 1500)
 */
import { MTU_OPTION, OFFLOAD_OPTION, validateOffloadOption, type Network } from './records.js';

export const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'] as const;
export const IPVLAN_MODES = ['l2', 'l3', 'l3s'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];
export type IpvlanMode = (typeof IPVLAN_MODES)[number];

const IFNAME = /^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,14}$/;

/** "eth1.100" → { iface: "eth1", vlan: 100 }; "eth1" → vlan 0. Throws the user-facing error. */
export function parseParent(p: string): { iface: string; vlan: number } {
  const m = /^(.+)\.(\d{1,4})$/.exec(p);
  const iface = m ? m[1] : p;
  const vlan = m ? Number(m[2]) : 0;
  if (!IFNAME.test(iface) || iface.includes('/')) throw new Error(`invalid option parent="${p}": not an interface name`);
  if (m && (vlan < 1 || vlan > 4094)) throw new Error(`invalid option parent="${p}": VLAN id must be from 1 to 4094`);
  return { iface, vlan };
}

export function validateParentOptions(driver: 'macvlan' | 'ipvlan', opts: Record<string, string>): void {
  const modeKey = driver === 'macvlan' ? 'macvlan_mode' : 'ipvlan_mode';
  const modes: readonly string[] = driver === 'macvlan' ? MACVLAN_MODES : IPVLAN_MODES;
  for (const k of Object.keys(opts)) {
    if (k !== 'parent' && k !== modeKey && k !== MTU_OPTION && k !== OFFLOAD_OPTION) throw new Error(`unknown option "${k}" for driver ${driver} (known: parent, ${modeKey}, ${MTU_OPTION}, ${OFFLOAD_OPTION})`);
  }
  if (opts.parent === undefined || opts.parent === '') throw new Error(`${driver} networks need -o parent=IFACE (an interface in the daemon's namespace; IFACE.VLAN for a tagged sub-interface)`);
  parseParent(opts.parent);
  const mode = opts[modeKey];
  if (mode !== undefined && !modes.includes(mode)) throw new Error(`invalid option ${modeKey}="${mode}": must be one of ${modes.join(', ')}`);
  const mtu = opts[MTU_OPTION];
  if (mtu !== undefined && (!/^[0-9]+$/.test(mtu) || Number(mtu) < 68 || Number(mtu) > 65535)) {
    throw new Error(`invalid option ${MTU_OPTION}="${mtu}": must be an integer from 68 to 65535`);
  }
  validateOffloadOption(opts);
}

export function networkMode(n: Network): string {
  if (n.driver === 'macvlan') return n.options.macvlan_mode ?? 'bridge';
  return n.options.ipvlan_mode ?? 'l2';
}
