/**
 * OverlayPlane — the overlay driver's live side: one Vtep element and one
 * underlay TunnelDevice per UDP port in use, and per overlay network the
 * switch port that joins the network's switch to its VTEP. It programs the
 * VTEP tables from what the control plane knows (the cluster's endpoint
 * records, static `-o peers=`) and the AES-GCM keys of encrypted networks.
 * Cold path throughout.
 */
import type { Logger } from 'pino';
import { Port } from '../dataplane/port.js';
import type { BridgeNetwork } from '../drivers/bridge.js';
import { TunnelDevice } from '../io/tunnel-device.js';
import { KeyRing } from '../overlay/seal.js';
import { Vtep } from '../overlay/vtep.js';
import { formatIp } from '../services/ipam.js';
import type { ClusterKey } from './cluster.js';
import type { Runtime } from './runtime.js';

export interface OverlaySpec {
  vni: number;
  udpPort: number;
  /** static VTEPs (uint32s): always flooded to */
  peers: number[];
  encrypted: boolean;
}

export interface RemoteEndpoint {
  mac: number;
  ip: number;
  vtep: number;
}

interface LiveOverlay {
  spec: OverlaySpec;
  port: Port;
  net: BridgeNetwork;
  keys: KeyRing | null;
  sendKeys: KeyRing | null;
  /** remote endpoints programmed, by MAC */
  applied: Map<number, RemoteEndpoint>;
}

export class OverlayPlane {
  private readonly vteps = new Map<number, { vtep: Vtep; dev: TunnelDevice }>();
  private readonly nets = new Map<string, LiveOverlay>();
  private readonly startedAt = Date.now();

  constructor(
    private readonly rt: Runtime,
    /** this host's VTEP address (0: the kernel picks the source) */
    readonly localIp: number,
    private readonly log: Logger,
  ) {}

  has(networkId: string): boolean {
    return this.nets.has(networkId);
  }

  /** Join a network's switch (already built by the runtime) to the VTEP of its UDP port. */
  add(networkId: string, net: BridgeNetwork, spec: OverlaySpec): void {
    if (this.nets.has(networkId)) return;
    const v = this.vtepFor(spec.udpPort);
    const port = new Port(this.rt.portIds.alloc(), `${net.spec.name}:vxlan`);
    const keys = spec.encrypted ? new KeyRing() : null;
    const sendKeys = spec.encrypted ? new KeyRing() : null;
    try {
      v.vtep.addNetwork({ vni: spec.vni, port, gatewayIp: net.spec.gatewayIp, gatewayMac: net.spec.gatewayMac, keys, sendKeys, mtu: net.spec.mtu });
    } catch (e) {
      this.rt.portIds.release(port.id);
      this.releaseVtep(spec.udpPort);
      throw e;
    }
    net.attach(port, undefined, true); // every remote endpoint of the network is behind this port
    this.nets.set(networkId, { spec, port, net, keys, sendKeys, applied: new Map() });
    v.vtep.setFlood(spec.vni, spec.peers);
    this.log.info({ network: net.spec.name, vni: spec.vni, port: spec.udpPort, peers: spec.peers.map(formatIp) }, 'overlay network joined its VTEP');
  }

  remove(networkId: string): void {
    const o = this.nets.get(networkId);
    if (!o) return;
    this.nets.delete(networkId);
    const v = this.vteps.get(o.spec.udpPort);
    v?.vtep.removeNetwork(o.spec.vni);
    o.net.detach(o.port);
    this.rt.portIds.release(o.port.id);
    this.releaseVtep(o.spec.udpPort);
  }

  /** The network's port on its switch (towards the VTEP) and its VNI. */
  portOf(networkId: string): { port: Port; vni: number } | null {
    const o = this.nets.get(networkId);
    return o ? { port: o.port, vni: o.spec.vni } : null;
  }

  /** Program a network's remote endpoints (static VTEP entries + proxy ARP) and flood list. */
  program(networkId: string, remote: readonly RemoteEndpoint[]): void {
    const o = this.nets.get(networkId);
    if (!o) return;
    const vtep = this.vteps.get(o.spec.udpPort)!.vtep;
    const want = new Map(remote.map((r) => [r.mac, r]));
    for (const [mac, r] of o.applied) {
      const w = want.get(mac);
      if (!w || w.ip !== r.ip || w.vtep !== r.vtep) {
        vtep.removeEndpoint(o.spec.vni, mac, r.ip);
        o.applied.delete(mac);
      }
    }
    for (const [mac, r] of want) {
      if (o.applied.has(mac)) continue;
      vtep.setEndpoint(o.spec.vni, mac, r.ip, r.vtep);
      o.applied.set(mac, r);
    }
    vtep.setFlood(o.spec.vni, [...o.spec.peers, ...remote.map((r) => r.vtep)]);
  }

  setKeys(networkId: string, keys: readonly ClusterKey[]): void {
    const o = this.nets.get(networkId);
    if (!o?.keys || !o.sendKeys) return;
    // activeFrom is wall-clock ms; the dataplane's clock is the engine's (performance.now())
    const shift = this.rt.engine.clock() - Date.now();
    const fresh = keys.filter((k) => k.activeFrom > this.startedAt);
    const ring = (list: readonly ClusterKey[]) => list.map((k) => ({ id: k.id, key: Buffer.from(k.key, 'base64'), activeFrom: k.activeFrom + shift }));
    o.keys.set(ring(keys));
    // GCM nonces are (sender, sequence) and sequences restart with the process: never seal with a key a previous run may have used
    o.sendKeys.set(ring(fresh));
  }

  /** A host left: forget everything that points at its VTEP. */
  forgetVtep(ip: number): void {
    for (const { vtep } of this.vteps.values()) vtep.forgetVtep(ip);
  }

  /** For inspect/tests: VTEP table and flood list of a network. */
  describe(networkId: string): { vni: number; udpPort: number; flood: string[]; entries: { mac: number; vtep: string; static: boolean }[] } | null {
    const o = this.nets.get(networkId);
    if (!o) return null;
    const vtep = this.vteps.get(o.spec.udpPort)!.vtep;
    return {
      vni: o.spec.vni,
      udpPort: o.spec.udpPort,
      flood: vtep.floodList(o.spec.vni).map(formatIp),
      entries: vtep.entries(o.spec.vni).map((e) => ({ mac: e.mac, vtep: formatIp(e.vtep), static: e.static })),
    };
  }

  counters(): { udpPort: number; tunnel: ReturnType<Port['counters']['snapshot']> }[] {
    return [...this.vteps.entries()].map(([udpPort, v]) => ({ udpPort, tunnel: v.vtep.tunnel.counters.snapshot() }));
  }

  close(): void {
    for (const id of [...this.nets.keys()]) this.remove(id);
  }

  private vtepFor(udpPort: number): { vtep: Vtep; dev: TunnelDevice } {
    let v = this.vteps.get(udpPort);
    if (v) return v;
    const port = new Port(this.rt.portIds.alloc(), `vtep:${udpPort}`, 4096);
    let dev: TunnelDevice;
    try {
      dev = new TunnelDevice(this.rt.native, this.rt.pool, port, formatIp(this.localIp), udpPort);
    } catch (e) {
      this.rt.portIds.release(port.id);
      const err = e as NodeJS.ErrnoException;
      throw new Error(`cannot open the VXLAN underlay socket on ${formatIp(this.localIp)}:${udpPort}: ${err.code ?? err.message}`);
    }
    const vtep = new Vtep(this.rt.pool, port, { localIp: this.localIp, udpPort, seed: this.rt.seed });
    this.rt.engine.addElement(vtep);
    this.rt.engine.addDevice(dev);
    dev.watch(() => this.rt.engine.readyNow());
    v = { vtep, dev };
    this.vteps.set(udpPort, v);
    return v;
  }

  private releaseVtep(udpPort: number): void {
    const v = this.vteps.get(udpPort);
    if (!v || v.vtep.networkCount > 0) return;
    this.vteps.delete(udpPort);
    this.rt.engine.removeElement(v.vtep);
    this.rt.engine.removeDevice(v.dev);
    while (!v.dev.port.tx.empty) this.rt.pool.free(v.dev.port.tx.pop());
    while (!v.dev.port.rx.empty) this.rt.pool.free(v.dev.port.rx.pop());
    v.dev.close();
    this.rt.portIds.release(v.dev.port.id);
  }
}
