/**
 * bridge driver — turns a bridge network spec into a graph fragment: one
 * learning switch, and the daemon's router joined to it through one
 * interface (the network's gateway: its MAC installed statically in the
 * switch). Endpoint ports are attached as containers join. With
 * enable_icc=false the switch only lets frames between an endpoint and the
 * router through. It never touches a frame itself.
 *
 * Known endpoints (a container's, whose MAC and address usernet assigned:
 * attach(port, ep)) are pinned: their MAC statically to their port in the
 * switch (never aged, never moved by a spoofed source, outside the table's
 * dynamic capacity and the port limit) and (ip → mac) as a permanent
 * neighbour in the router on this network's iface (never learned, aged or
 * evicted, outside the iface's ARP quota). So neither a MAC flood nor an
 * ARP flood can keep a newcomer from being switched to and answered.
 * detach() unpins both. Ports attached without `ep` (VMs, overlay
 * tunnels) are learned as usual.
 */
import type { Engine } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import { Port, type PortIds } from '../dataplane/port.js';
import type { Router } from '../router/router.js';
import { LearningSwitch } from '../switch/learning-switch.js';

export interface DataplaneContext {
  pool: FramePool;
  engine: Engine;
  portIds: PortIds;
  router: Router;
  /** per-daemon seed for keyed hashes */
  seed: number;
}

export interface BridgeSpec {
  id: string;
  name: string;
  gatewayIp: number;
  gatewayMac: number;
  prefixLen: number;
  mtu: number;
  internal: boolean;
  icc: boolean;
  /** super-frames on this network's TAPs (undefined: the daemon's default) */
  offload?: boolean;
}

export class BridgeNetwork {
  readonly sw: LearningSwitch;
  /** the router's port on this network */
  readonly gwPort: Port;
  /** the router's interface id for this network */
  readonly iface: number;
  readonly ports = new Set<Port>();
  /** endpoints pinned per port (see the header) */
  private readonly pinned = new Map<Port, { mac: number; ip: number }>();

  constructor(
    private readonly ctx: DataplaneContext,
    readonly spec: BridgeSpec,
  ) {
    this.sw = new LearningSwitch(ctx.pool, { seed: ctx.seed });
    this.gwPort = new Port(ctx.portIds.alloc(), `${spec.name}:gateway`);
    this.gwPort.mtu = spec.mtu;
    this.sw.attach(this.gwPort);
    this.sw.addStatic(spec.gatewayMac, this.gwPort);
    if (!spec.icc) {
      this.sw.isolated = true;
      this.sw.trust(this.gwPort);
    }
    this.iface = ctx.router.addInterface({
      kind: 'network',
      port: this.gwPort,
      side: 'switch',
      ip: spec.gatewayIp,
      prefixLen: spec.prefixLen,
      mac: spec.gatewayMac,
      mtu: spec.mtu,
      networkId: spec.id,
      internal: spec.internal,
    });
    ctx.engine.addElement(this.sw, true);
  }

  /** A port on the switch: `ep`, a container's endpoint (its MAC pinned, its address a permanent neighbour); `trunk`, a port with many hosts behind it (the VXLAN tunnel) that the per-port learning limit does not bound. */
  attach(port: Port, ep?: { mac: number; ip: number }, trunk = false): void {
    port.mtu = this.spec.mtu;
    this.ports.add(port);
    this.sw.attach(port, trunk);
    if (!ep || ep.mac === 0) return;
    try {
      this.sw.addStatic(ep.mac, port);
    } catch {
      return; // no static room left (counted): learned as usual
    }
    if (ep.ip !== 0) this.ctx.router.addNeighbour(this.iface, ep.ip, ep.mac);
    this.pinned.set(port, ep);
  }

  detach(port: Port): void {
    if (!this.ports.delete(port)) return;
    this.sw.detach(port); // flushes the port's MACs, the pinned one too
    const ep = this.pinned.get(port);
    if (!ep) return;
    this.pinned.delete(port);
    if (ep.ip !== 0) this.ctx.router.removeNeighbour(this.iface, ep.ip, ep.mac);
  }

  destroy(): void {
    for (const p of this.ports) this.sw.detach(p);
    this.ports.clear();
    this.pinned.clear(); // removeInterface drops the iface's neighbours
    this.ctx.router.removeInterface(this.iface);
    this.sw.detach(this.gwPort);
    this.ctx.engine.removeElement(this.sw);
    this.ctx.portIds.release(this.gwPort.id);
  }
}
