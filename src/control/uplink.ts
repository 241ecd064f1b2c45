/**
 * `--uplink SPEC`: the outside of the daemon.
 *   tap:NAME,ip=CIDR[,gw=IP]    a TAP the daemon creates; the user places its
 *                               kernel side (e.g. in a lab "outside" namespace)
 *   iface:NAME,ip=CIDR[,gw=IP]  an existing interface in the daemon's
 *                               namespace, read and written with AF_PACKET
 * ip is usernet's own address on the uplink (masquerade source, published
 * ports); gw the next hop of the default route.
 */
import { cidrContains, formatIp, makeCidr, parseIp } from '../services/ipam.js';

export interface UplinkSpec {
  kind: 'tap' | 'iface';
  name: string;
  ip: number;
  prefixLen: number;
  /** 0: no default route */
  gateway: number;
}

const IFNAME = /^[a-zA-Z0-9_.%-]{1,15}$/;

export function parseUplink(spec: string): UplinkSpec {
  const bad = (why: string) => new Error(`invalid --uplink "${spec}": ${why}`);
  const m = /^(tap|iface):([^,]*)(?:,(.*))?$/.exec(spec);
  if (!m) throw bad('expected tap:NAME,ip=CIDR,gw=IP or iface:NAME,ip=CIDR,gw=IP');
  const [, kind, name, rest] = m;
  if (!IFNAME.test(name)) throw bad(`interface name "${name}" must be 1-15 characters [a-zA-Z0-9_.-]`);
  if (name === 'lo') throw bad('lo cannot be an uplink');
  const kv: Record<string, string> = {};
  for (const part of (rest ?? '').split(',').filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) throw bad(`"${part}" is not KEY=VALUE`);
    const k = part.slice(0, i);
    if (k !== 'ip' && k !== 'gw') throw bad(`unknown key "${k}" (ip, gw)`);
    kv[k] = part.slice(i + 1);
  }
  if (!kv.ip) throw bad('ip=CIDR is required (usernet\'s own address on the uplink)');
  const slash = kv.ip.indexOf('/');
  if (slash < 0) throw bad(`ip "${kv.ip}" needs a prefix length, e.g. ${kv.ip}/24`);
  let ip: number;
  const prefixLen = Number(kv.ip.slice(slash + 1));
  try {
    ip = parseIp(kv.ip.slice(0, slash), 'uplink address');
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (!/^\d{1,2}$/.test(kv.ip.slice(slash + 1)) || prefixLen < 1 || prefixLen > 30) throw bad(`prefix length "${kv.ip.slice(slash + 1)}" must be 1-30`);
  let gateway = 0;
  if (kv.gw) {
    try {
      gateway = parseIp(kv.gw, 'gateway');
    } catch (e) {
      throw bad((e as Error).message);
    }
    if (!cidrContains(makeCidr(ip, prefixLen), gateway)) throw bad(`gateway ${kv.gw} is not on the uplink subnet ${formatIp(ip)}/${prefixLen}`);
    if (gateway === ip) throw bad('gateway and uplink address are the same');
  }
  return { kind: kind as 'tap' | 'iface', name, ip, prefixLen, gateway };
}
