/**
 * bridge driver — turns a bridge network spec into a graph fragment: one
 * learning switch, and the daemon's router joined to it through one
 * interface (the network's gateway: its MAC installed statically in the
 * switch). Endpoint ports are attached as containers join. With
 * enable_icc=false the switch only lets frames between an endpoint and the
 * router through. It never touches a frame itself.
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
}

export class BridgeNetwork {
  readonly sw: LearningSwitch;
  /** the router's port on this network */
  readonly gwPort: Port;
  /** the router's interface id for this network */
  readonly iface: number;
  readonly ports = new Set<Port>();

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

  /** `_ep` (the endpoint's MAC and address) is for drivers that need it (macvlan, ipvlan). */
  attach(port: Port, _ep?: { mac: number; ip: number }): void {
    port.mtu = this.spec.mtu;
    this.ports.add(port);
    this.sw.attach(port);
  }

  detach(port: Port): void {
    if (!this.ports.delete(port)) return;
    this.sw.detach(port);
  }

  destroy(): void {
    for (const p of this.ports) this.sw.detach(p);
    this.ports.clear();
    this.ctx.router.removeInterface(this.iface);
    this.sw.detach(this.gwPort);
    this.ctx.engine.removeElement(this.sw);
    this.ctx.portIds.release(this.gwPort.id);
  }
}
