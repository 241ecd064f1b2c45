/**
 * ParentPlane — the live side of macvlan/ipvlan networks: one AF_PACKET
 * PacketDevice (promiscuous: endpoints have MACs of their own) and one
 * ParentDemux per parent interface, shared by the networks on it (one per
 * VLAN id), and the networks' ParentNetwork fragments. Cold path.
 */
import type { Logger } from 'pino';
import { Port } from '../dataplane/port.js';
import { ParentNetwork, type ParentSpec } from '../drivers/parent.js';
import { PacketDevice } from '../io/packet-device.js';
import { ParentDemux } from '../switch/parent-demux.js';
import type { Runtime } from './runtime.js';

interface LiveParent {
  dev: PacketDevice;
  demux: ParentDemux;
  /** network ids by VLAN id */
  vlans: Map<number, string>;
}

export class ParentPlane {
  private readonly parents = new Map<string, LiveParent>();
  readonly nets = new Map<string, ParentNetwork>();

  constructor(
    private readonly rt: Runtime,
    private readonly log: Logger,
  ) {}

  /** A network on its parent interface (opened when no network uses it yet); one network per parent and VLAN. */
  add(spec: Omit<ParentSpec, 'parentMac'>): ParentNetwork {
    const existing = this.nets.get(spec.id);
    if (existing) return existing;
    const p = this.open(spec.iface);
    const taken = p.vlans.get(spec.vlan);
    if (taken !== undefined) {
      this.closeIfUnused(spec.iface);
      const what = spec.vlan ? `${spec.iface}.${spec.vlan}` : spec.iface;
      throw new Error(`parent ${what} is already used by another network`);
    }
    const net = new ParentNetwork({ pool: this.rt.pool, engine: this.rt.engine, portIds: this.rt.portIds, seed: this.rt.seed, conntrack: this.rt.conntrack }, p.demux, { ...spec, parentMac: p.dev.mac });
    p.vlans.set(spec.vlan, spec.id);
    this.nets.set(spec.id, net);
    this.log.info({ network: spec.name, parent: spec.iface, vlan: spec.vlan, driver: spec.driver, mode: spec.mode }, 'network on parent interface');
    return net;
  }

  remove(id: string): void {
    const net = this.nets.get(id);
    if (!net) return;
    this.nets.delete(id);
    net.destroy();
    const p = this.parents.get(net.spec.iface);
    p?.vlans.delete(net.spec.vlan);
    this.closeIfUnused(net.spec.iface);
  }

  close(): void {
    for (const id of [...this.nets.keys()]) this.remove(id);
  }

  private open(iface: string): LiveParent {
    let p = this.parents.get(iface);
    if (p) return p;
    const port = new Port(this.rt.portIds.alloc(), `parent:${iface}`, 4096);
    let dev: PacketDevice;
    try {
      dev = new PacketDevice(this.rt.native, this.rt.pool, port, iface, { promisc: true, offload: this.rt.offload });
    } catch (e) {
      this.rt.portIds.release(port.id);
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENODEV') throw new Error(`parent interface ${iface} does not exist in the daemon's namespace`);
      throw new Error(`cannot open parent interface ${iface}: ${err.code ?? err.message}`);
    }
    const demux = new ParentDemux(this.rt.pool, port);
    this.rt.engine.addElement(demux, true);
    this.rt.engine.addDevice(dev);
    dev.watch(() => this.rt.engine.readyNow());
    p = { dev, demux, vlans: new Map() };
    this.parents.set(iface, p);
    return p;
  }

  private closeIfUnused(iface: string): void {
    const p = this.parents.get(iface);
    if (!p || p.vlans.size > 0) return;
    this.parents.delete(iface);
    this.rt.engine.removeElement(p.demux);
    this.rt.engine.removeDevice(p.dev);
    for (const ring of [p.dev.port.rx, p.dev.port.tx]) while (!ring.empty) this.rt.pool.free(ring.pop());
    p.dev.close();
    this.rt.portIds.release(p.dev.port.id);
  }
}
