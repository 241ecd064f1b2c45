/**
 * bridge driver — turns a bridge network spec into a graph fragment: one
 * learning switch, the gateway element on an internal port (its MAC
 * installed statically), and endpoint ports attached as containers join.
 * It never touches a frame itself.
 */
import type { Engine } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import { Port, type PortIds } from '../dataplane/port.js';
import { Gateway } from '../router/gateway.js';
import { LearningSwitch } from '../switch/learning-switch.js';

export interface DataplaneContext {
  pool: FramePool;
  engine: Engine;
  portIds: PortIds;
  /** per-daemon seed for keyed hashes */
  seed: number;
}

export interface BridgeSpec {
  id: string;
  name: string;
  gatewayIp: number;
  gatewayMac: number;
  mtu: number;
}

export class BridgeNetwork {
  readonly sw: LearningSwitch;
  readonly gateway: Gateway;
  readonly gwPort: Port;
  readonly ports = new Set<Port>();

  constructor(
    private readonly ctx: DataplaneContext,
    readonly spec: BridgeSpec,
  ) {
    this.sw = new LearningSwitch(ctx.pool, { seed: ctx.seed });
    this.gwPort = new Port(ctx.portIds.alloc(), `${spec.name}:gateway`);
    this.gwPort.mtu = spec.mtu;
    this.gateway = new Gateway(ctx.pool, this.gwPort, { ip: spec.gatewayIp, mac: spec.gatewayMac, mtu: spec.mtu });
    this.sw.attach(this.gwPort);
    this.sw.addStatic(spec.gatewayMac, this.gwPort);
    ctx.engine.addElement(this.sw);
    ctx.engine.addElement(this.gateway);
  }

  attach(port: Port): void {
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
    this.sw.detach(this.gwPort);
    this.ctx.engine.removeElement(this.sw);
    this.ctx.engine.removeElement(this.gateway);
    for (let h = this.gwPort.rx.pop(); h >= 0; h = this.gwPort.rx.pop()) this.ctx.pool.free(h);
    for (let h = this.gwPort.tx.pop(); h >= 0; h = this.gwPort.tx.pop()) this.ctx.pool.free(h);
    this.ctx.portIds.release(this.gwPort.id);
  }
}
