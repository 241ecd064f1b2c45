/**
 * IfaceTable — the router's L3 interfaces, their routes and the published
 * ports, in typed arrays indexed by interface id (0 ≤ id < MAX_IFACES).
 *
 * Routes are implied by the interfaces: each interface's connected subnet,
 * plus a default route via the first uplink (lowest id) whose gateway is
 * set. route(dst) is a longest-prefix match over the (few) live interfaces;
 * nextHop(iface, dst) is dst when on-link, else the interface's gateway (0:
 * none, i.e. unreachable). localIface(ip) finds the interface owning an
 * address. Published ports: (proto, host port) → (target IP, target port),
 * two flat tables of 65536 entries per protocol.
 *
 * Cold: add/remove/publish (they rebuild the dense `live` list). Hot: route,
 * nextHop, localIface, published lookups (no allocation).
 */
import { Counters } from '../dataplane/counters.js';
import type { Port } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';

export const MAX_IFACES = 4095;
export const KIND_NETWORK = 0;
export const KIND_UPLINK = 1;
export const KIND_HOST = 2;
export type IfaceKind = 'network' | 'uplink' | 'host';
const KINDS: Record<IfaceKind, number> = { network: KIND_NETWORK, uplink: KIND_UPLINK, host: KIND_HOST };

export interface IfaceConfig {
  kind: IfaceKind;
  port: Port;
  /**
   * 'switch': the port is attached to a network's LearningSwitch and the
   * router is its device side (consumes port.tx, produces port.rx).
   * 'device': the port belongs to a device (TAP/AF_PACKET) and the router is
   * its switch side (consumes port.rx, produces port.tx).
   */
  side: 'switch' | 'device';
  ip: number;
  prefixLen: number;
  mac: number;
  mtu: number;
  networkId?: string;
  /** network ifaces: --internal */
  internal?: boolean;
  /** uplink: next hop of the default route (0: none) */
  gateway?: number;
}

export interface Published {
  proto: 6 | 17;
  hostPort: number;
  targetIp: number;
  targetPort: number;
}

export class IfaceTable {
  readonly active = new Uint8Array(MAX_IFACES);
  readonly kind = new Uint8Array(MAX_IFACES);
  /** addresses, masks and gateways as int32 (the hot path's form: no heap numbers) */
  readonly ip = new Int32Array(MAX_IFACES);
  readonly mask = new Int32Array(MAX_IFACES);
  readonly net = new Int32Array(MAX_IFACES);
  readonly prefix = new Uint8Array(MAX_IFACES);
  readonly mac = new Float64Array(MAX_IFACES);
  /** the MAC split for the hot path: first two octets / last four (int32) */
  readonly macHi = new Int32Array(MAX_IFACES);
  readonly macLo = new Int32Array(MAX_IFACES);
  readonly mtu = new Uint16Array(MAX_IFACES);
  readonly internal = new Uint8Array(MAX_IFACES);
  readonly gateway = new Int32Array(MAX_IFACES);
  /** where the router reads frames of iface i / writes them */
  readonly inRing: (Ring | null)[] = new Array<Ring | null>(MAX_IFACES).fill(null);
  readonly outRing: (Ring | null)[] = new Array<Ring | null>(MAX_IFACES).fill(null);
  readonly port: (Port | null)[] = new Array<Port | null>(MAX_IFACES).fill(null);
  /** 1: the router is the port's device side (it counts port.counters) */
  readonly deviceSide = new Uint8Array(MAX_IFACES);
  readonly counters: (Counters | null)[] = new Array<Counters | null>(MAX_IFACES).fill(null);
  readonly config: (IfaceConfig | null)[] = new Array<IfaceConfig | null>(MAX_IFACES).fill(null);
  /** live iface ids, dense, ascending */
  live = new Int32Array(0);
  /** the default route's iface (−1: none) */
  defaultIface = -1;

  /** published: index (proto === 6 ? 0 : 65536) + hostPort */
  readonly pubIp = new Int32Array(2 * 65536);
  readonly pubPort = new Int32Array(2 * 65536).fill(-1);

  add(cfg: IfaceConfig): number {
    if (!(cfg.prefixLen >= 0 && cfg.prefixLen <= 32)) throw new Error(`bad prefix length ${cfg.prefixLen}`);
    if (!(cfg.mtu >= 68 && cfg.mtu <= 65535)) throw new Error(`bad MTU ${cfg.mtu}`);
    if (KINDS[cfg.kind] === undefined) throw new Error(`bad iface kind ${cfg.kind}`);
    for (let i = 0; i < MAX_IFACES; i++) if (this.port[i] === cfg.port) throw new Error(`port ${cfg.port.name} already has an iface`);
    let id = -1;
    for (let i = 0; i < MAX_IFACES; i++) {
      if (this.active[i] === 0) {
        id = i;
        break;
      }
    }
    if (id < 0) throw new Error('too many router interfaces');
    const m = cfg.prefixLen === 0 ? 0 : 0xffffffff << (32 - cfg.prefixLen);
    this.active[id] = 1;
    this.kind[id] = KINDS[cfg.kind];
    this.ip[id] = cfg.ip;
    this.mask[id] = m;
    this.net[id] = cfg.ip & m;
    this.prefix[id] = cfg.prefixLen;
    this.mac[id] = cfg.mac;
    this.macHi[id] = macHi(cfg.mac);
    this.macLo[id] = macLo(cfg.mac);
    this.mtu[id] = cfg.mtu;
    this.internal[id] = cfg.kind === 'network' && cfg.internal ? 1 : 0;
    this.gateway[id] = cfg.kind === 'uplink' ? (cfg.gateway ?? 0) : 0;
    const sw = cfg.side === 'switch';
    this.inRing[id] = sw ? cfg.port.tx : cfg.port.rx;
    this.outRing[id] = sw ? cfg.port.rx : cfg.port.tx;
    this.deviceSide[id] = sw ? 1 : 0;
    this.port[id] = cfg.port;
    this.counters[id] = new Counters();
    this.config[id] = { ...cfg };
    this.rebuild();
    return id;
  }

  remove(id: number): void {
    if (this.active[id] === 0) return;
    this.active[id] = 0;
    this.inRing[id] = null;
    this.outRing[id] = null;
    this.port[id] = null;
    this.counters[id] = null;
    this.config[id] = null;
    this.rebuild();
  }

  private rebuild(): void {
    const ids: number[] = [];
    let def = -1;
    for (let i = 0; i < MAX_IFACES; i++) {
      if (this.active[i] === 0) continue;
      ids.push(i);
      if (def < 0 && this.kind[i] === KIND_UPLINK && this.gateway[i] !== 0) def = i;
    }
    this.live = Int32Array.from(ids);
    this.defaultIface = def;
  }

  /** Longest-prefix match: the egress iface for dst, or −1. (Addresses in: uint32 or int32.) */
  route(dst: number): number {
    dst |= 0;
    const live = this.live;
    let best = -1;
    let bestLen = -1;
    for (let k = 0; k < live.length; k++) {
      const i = live[k];
      if ((dst & this.mask[i]) === this.net[i] && this.prefix[i] > bestLen) {
        best = i;
        bestLen = this.prefix[i];
      }
    }
    return best >= 0 ? best : this.defaultIface;
  }

  /** dst on-link on iface i → dst; else i's gateway (0 = none); as int32. */
  nextHop(i: number, dst: number): number {
    dst |= 0;
    return (dst & this.mask[i]) === this.net[i] ? dst : this.gateway[i];
  }

  /** The iface whose address is ip, or −1. */
  localIface(ip: number): number {
    ip |= 0;
    const live = this.live;
    for (let k = 0; k < live.length; k++) if (this.ip[live[k]] === ip) return live[k];
    return -1;
  }

  /** ip is the subnet broadcast of iface i (prefix < 31). */
  isSubnetBroadcast(i: number, ip: number): boolean {
    return this.prefix[i] < 31 && (ip | this.mask[i]) === -1 && (ip & this.mask[i]) === this.net[i];
  }

  inSubnet(i: number, ip: number): boolean {
    return (ip & this.mask[i]) === this.net[i];
  }

  publish(p: Published): void {
    const k = pubIndex(p.proto, p.hostPort);
    const cur = this.pubPort[k];
    if (cur >= 0 && (cur !== p.targetPort || this.pubIp[k] !== (p.targetIp | 0))) {
      throw new Error(`${p.proto === 6 ? 'tcp' : 'udp'} port ${p.hostPort} is already published`);
    }
    if (!(p.targetPort >= 1 && p.targetPort <= 65535)) throw new Error(`bad target port ${p.targetPort}`);
    this.pubIp[k] = p.targetIp;
    this.pubPort[k] = p.targetPort;
  }

  unpublish(p: Published): void {
    const k = pubIndex(p.proto, p.hostPort);
    this.pubPort[k] = -1;
    this.pubIp[k] = 0;
  }
}

/** First two octets of a 48-bit MAC number. */
export function macHi(mac: number): number {
  return Math.floor(mac / 0x100000000) & 0xffff;
}
/** Last four octets of a 48-bit MAC number, as int32. */
export function macLo(mac: number): number {
  return mac | 0;
}
/** Write a MAC given as (hi, lo) at b[o..o+6). */
export function writeMacHL(b: Uint8Array, o: number, hi: number, lo: number): void {
  b[o] = hi >>> 8;
  b[o + 1] = hi;
  b[o + 2] = lo >>> 24;
  b[o + 3] = lo >>> 16;
  b[o + 4] = lo >>> 8;
  b[o + 5] = lo;
}

/** Index into pubIp/pubPort, or a throw for a bad proto/port (cold). */
export function pubIndex(proto: number, port: number): number {
  if (proto !== 6 && proto !== 17) throw new Error(`bad protocol ${proto}`);
  if (!(port >= 1 && port <= 65535)) throw new Error(`bad host port ${port}`);
  return (proto === 6 ? 0 : 65536) + port;
}
