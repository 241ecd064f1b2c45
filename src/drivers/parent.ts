/**
 * macvlan and ipvlan drivers — turn a network on an existing interface into
 * a graph fragment: the interface's AF_PACKET device feeds a ParentDemux
 * (one per interface, shared by every network on it, split by 802.1Q VLAN
 * id), and the network's VLAN port feeds a MacvlanSwitch or IpvlanSwitch to
 * which container ports are attached. No router, no NAT, no DHCP: the
 * endpoints live on the parent's segment, whose own router is their
 * gateway. It never touches a frame itself.
 */
import type { Engine } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port, PortIds } from '../dataplane/port.js';
import { segmentsOf } from '../dataplane/segments-count.js';
import { IpvlanSwitch } from '../switch/ipvlan.js';
import { MacvlanSwitch } from '../switch/macvlan.js';
import type { ParentDemux } from '../switch/parent-demux.js';
import type { Conntrack } from '../nat/conntrack.js';

export interface ParentSpec {
  id: string;
  name: string;
  driver: 'macvlan' | 'ipvlan';
  mode: string;
  /** the interface (without .VLAN) and the VLAN id (0 = untagged) */
  iface: string;
  vlan: number;
  mtu: number;
  /** the parent interface's MAC */
  parentMac: number;
  /** the network's gateway (the segment's router), for ipvlan l3 */
  gatewayIp: number;
  /** super-frames on this network's container TAPs (undefined: the daemon's default) */
  offload?: boolean;
}

export interface ParentContext {
  pool: FramePool;
  engine: Engine;
  portIds: PortIds;
  seed: number;
  /** ipvlan l3s: flows passing the endpoints are tracked here (`usernet conntrack` lists them) */
  conntrack?: Conntrack;
}

export class ParentNetwork {
  readonly element: MacvlanSwitch | IpvlanSwitch;
  readonly ports = new Set<Port>();
  private readonly vlanPort: Port;

  constructor(
    private readonly ctx: ParentContext,
    private readonly demux: ParentDemux,
    readonly spec: ParentSpec,
  ) {
    this.vlanPort = demux.vlanPort(spec.vlan, `${spec.iface}${spec.vlan ? '.' + spec.vlan : ''}`);
    this.element =
      spec.driver === 'macvlan'
        ? new MacvlanSwitch(ctx.pool, this.vlanPort, { mode: spec.mode as 'bridge', seed: ctx.seed })
        : new IpvlanSwitch(ctx.pool, this.vlanPort, {
            mode: spec.mode as 'l2',
            parentMac: spec.parentMac,
            gatewayIp: spec.gatewayIp,
            seed: ctx.seed,
            track: spec.mode === 'l3s' && ctx.conntrack ? trackFlows(ctx.conntrack, ctx.engine) : undefined,
          });
    ctx.engine.addElement(this.element);
  }

  /** The MAC a container interface must carry: its own, or the parent's (ipvlan, macvlan passthru). */
  endpointMac(own: number): number {
    return this.spec.driver === 'ipvlan' || this.spec.mode === 'passthru' ? this.spec.parentMac : own;
  }

  attach(port: Port, ep: { mac: number; ip: number }): void {
    port.mtu = this.spec.mtu;
    if (this.element instanceof MacvlanSwitch) this.element.attach(port, this.endpointMac(ep.mac));
    else this.element.attach(port, ep.ip);
    this.ports.add(port);
  }

  detach(port: Port): void {
    if (!this.ports.delete(port)) return;
    this.element.detach(port);
  }

  destroy(): void {
    for (const p of [...this.ports]) this.detach(p);
    this.ctx.engine.removeElement(this.element);
    this.demux.release(this.spec.vlan);
  }
}

/**
 * ipvlan l3s's connection-tracking hook: every IPv4 TCP/UDP/ICMP packet
 * through the endpoints is looked up in (or creates) a conntrack flow and
 * counted, so flows show in `usernet conntrack` with their states. No
 * rewriting: l3s tracks, it does not NAT.
 */
function trackFlows(ct: Conntrack, engine: Engine): (pool: FramePool, h: number, inbound: boolean) => void {
  return (pool, h) => {
    const v = pool.view;
    const o = pool.offsets[h];
    const len = pool.lengths[h];
    if (len < 34 || v.getUint16(o + 12) !== 0x0800) return;
    const ip = o + 14;
    const ihl = (v.getUint8(ip) & 0x0f) << 2;
    const proto = v.getUint8(ip + 9);
    const src = v.getInt32(ip + 12);
    const dst = v.getInt32(ip + 16);
    let sp = 0;
    let dp = 0;
    let flags = 0;
    if ((proto === 6 || proto === 17) && len >= 14 + ihl + 14) {
      sp = v.getUint16(ip + ihl);
      dp = v.getUint16(ip + ihl + 2);
      if (proto === 6) flags = v.getUint8(ip + ihl + 13);
    } else if (proto === 1 && len >= 14 + ihl + 8) {
      const type = v.getUint8(ip + ihl);
      if (type !== 8 && type !== 0) return;
      sp = dp = v.getUint16(ip + ihl + 4); // echo id on both sides
    } else return;
    const now = engine.clock();
    let hit = ct.lookup(proto, src, sp, dst, dp);
    if (hit < 0) {
      const f = ct.create(proto, src, sp, dst, dp, dst, dp, src, sp, now);
      if (f < 0) return;
      hit = f << 1;
    }
    ct.seen(hit >> 1, hit & 1, flags, len - 14, now, segmentsOf(pool, h));
  };
}
