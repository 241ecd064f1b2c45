/**
 * Runtime — the live side of the daemon: the frame pool, the engine, one
 * BridgeNetwork graph per network, and for each container its namespace and
 * one TapDevice per attachment. The daemon's State (model.ts) says what
 * should exist; Runtime makes it so. Cold path throughout.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { Engine } from '../dataplane/engine.js';
import { FramePool } from '../dataplane/pool.js';
import { Port, PortIds } from '../dataplane/port.js';
import { BridgeNetwork, type BridgeSpec, type DataplaneContext } from '../drivers/bridge.js';
import { bindPoolTo, loadNative, type NativeAddon } from '../io/native.js';
import { PacketDevice } from '../io/packet-device.js';
import { TapDevice } from '../io/tap-device.js';
import { QemuDgramDevice, QemuStreamDevice } from '../io/qemu-device.js';
import { Conntrack, capacityFromEnv } from '../nat/conntrack.js';
import { NatRewriter } from '../nat/nat.js';
import { UserlandProxy } from '../nat/proxy.js';
import { Router } from '../router/router.js';
import { DhcpServer } from '../services/dhcp.js';
import { GatewayDns } from '../services/gateway-dns.js';
import { formatIp, formatMac, macToNumber, parseIp as parseIpNum } from '../services/ipam.js';
import { CaptureSession, SinkSet } from './capture.js';
import * as netns from './netns.js';
import type { OverlayPlane } from './overlay-plane.js';
import { ParentPlane } from './parent-plane.js';
import { ParentNetwork, type ParentSpec } from '../drivers/parent.js';
import type { UplinkSpec } from './uplink.js';

/** The host link (like docker0): the daemon's namespace reaches containers through it. */
export const HOST_LINK = { kernelIp: '198.19.255.253', routerIp: 0xc613fffe /* 198.19.255.254 */, prefixLen: 30 } as const;
/** usernet's own MACs on the uplink TAP and the host link (locally administered) */
const UPLINK_MAC = 0x02756e000001;
/** large (66 KiB) slots for super-frames: 4 spares per device with offloads, the rest in flight (270 MiB of address space, touched only as used) */
const LARGE_SLOTS = 4096;
const HOST_LINK_MAC = 0x02756e000002;

export interface PublishSpec {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  targetIp: string;
  targetPort: number;
}

export interface EndpointPlug {
  ifname: string;
  mac: string;
  /** a.b.c.d/len */
  cidr: string;
}

interface LiveEndpoint {
  networkId: string;
  ifname: string;
  dev: TapDevice;
}

/** A network's DHCP server: the addresses it holds (offered, bound, declined) and its timer element. */
interface LiveDhcp {
  server: DhcpServer;
  held: Set<number>;
  element: { process(now: number): void; tick(now: number): void };
  dns: GatewayDns | null;
}

/** What the DHCP server of a bridge network needs from the daemon. */
export interface DhcpHooks {
  /** true when a container on the network has the address */
  containerHolds(ip: number): boolean;
  /** DNS at the gateway (UDP 53) for DHCP clients: the answer to a query from this network */
  resolve?(query: Buffer): Promise<Buffer | null>;
}

/** Which namespaces are this daemon's own (written down before they are made, struck out once deleted). */
export interface NetnsOwnership {
  has(name: string): boolean;
  add(name: string): void;
  remove(name: string): void;
}

/** What `usernet attach` puts on a network's switch: a TAP, a QEMU socket, or an existing interface. */
export type AttachSpec =
  | { kind: 'tap'; ifname: string }
  | { kind: 'qemu-stream'; path: string }
  | { kind: 'qemu-dgram'; path: string }
  | { kind: 'iface'; ifname: string };

/** QEMU's own socket for `--qemu-dgram PATH` (usernet binds PATH and sends here) */
export const qemuDgramPeer = (path: string): string => `${path}.vm`;

type AttachDevice = TapDevice | PacketDevice | QemuDgramDevice | QemuStreamDevice;

/** `usernet attach`: an endpoint on a network's switch; what is behind it configures itself (DHCP). */
interface LiveAttachment {
  networkId: string;
  dev: AttachDevice;
}

/** DHCP leases last this long (renewed at half) */
export const DHCP_LEASE_SECONDS = 3600;

interface LiveContainer {
  name: string;
  /** null: shares the daemon's namespace (host network) */
  netns: string | null;
  endpoints: LiveEndpoint[];
}

export class Runtime {
  readonly native: NativeAddon;
  readonly pool: FramePool;
  readonly engine: Engine;
  readonly portIds = new PortIds();
  readonly seed = randomInt(0, 0x7fffffff);
  readonly networks = new Map<string, BridgeNetwork>();
  readonly containers = new Map<string, LiveContainer>();
  /** DHCP servers by network id */
  readonly dhcp = new Map<string, LiveDhcp>();
  /** attachments by name */
  readonly attachments = new Map<string, LiveAttachment>();
  /** super-frames on the devices opened from now on (daemon --offload; a network may turn them off) */
  offload = true;
  readonly conntrack: Conntrack;
  readonly router: Router;
  uplink: { spec: UplinkSpec; dev: TapDevice | PacketDevice; iface: number } | null = null;
  hostLink: { dev: TapDevice; iface: number } | null = null;
  /** the namespaces this daemon made (state-dir.ts NetnsLedger): only those are ever removed */
  netnsLedger: NetnsOwnership = { has: () => false, add: () => undefined, remove: () => undefined };
  /** macvlan/ipvlan networks and their parent interfaces */
  readonly parents: ParentPlane;
  /** the overlay driver's VTEPs (set by the daemon) */
  overlay: OverlayPlane | null = null;
  private readonly ctx: DataplaneContext;
  private readonly networkSinks = new Map<string, SinkSet>();
  /** userland proxies by "proto/hostIp/hostPort" */
  private readonly proxies = new Map<string, UserlandProxy>();

  constructor(
    private readonly log: Logger,
    poolSlots = 32768,
  ) {
    this.native = loadNative();
    // large slots hold super-frames (64 KiB + headers): touched only while they flow (see pool.ts)
    this.pool = new FramePool({ capacity: poolSlots, slotSize: 2048, headroom: 128, largeCapacity: LARGE_SLOTS });
    bindPoolTo(this.native, this.pool);
    this.engine = new Engine();
    // USERNET_CONNTRACK_CAPACITY: a hidden knob for tests that fill the table (default 131072)
    this.conntrack = new Conntrack({ capacity: capacityFromEnv(process.env.USERNET_CONNTRACK_CAPACITY), seed: this.seed });
    this.router = new Router(this.pool, this.conntrack, new NatRewriter(this.pool, this.conntrack), { seed: this.seed });
    this.engine.addElement(this.router);
    this.engine.start();
    this.ctx = { pool: this.pool, engine: this.engine, portIds: this.portIds, router: this.router, seed: this.seed };
    this.parents = new ParentPlane(this, log);
  }

  private addDevice(dev: TapDevice | PacketDevice): void {
    this.engine.addDevice(dev);
    dev.watch(() => this.engine.readyNow());
  }

  /** The outside: a TAP the daemon creates (the user places its kernel side) or an existing interface over AF_PACKET. */
  setUplink(spec: UplinkSpec): void {
    const port = new Port(this.portIds.alloc(), `uplink:${spec.name}`);
    const dev = spec.kind === 'tap' ? new TapDevice(this.native, this.pool, port, spec.name, { offload: this.offload }) : new PacketDevice(this.native, this.pool, port, spec.name, { offload: this.offload });
    const mac = spec.kind === 'tap' ? UPLINK_MAC : (dev as PacketDevice).mac;
    const iface = this.router.addInterface({ kind: 'uplink', port, side: 'device', ip: spec.ip, prefixLen: spec.prefixLen, mac, mtu: 1500, gateway: spec.gateway });
    this.addDevice(dev);
    this.uplink = { spec, dev, iface };
    this.log.info({ uplink: spec.name, kind: spec.kind, ip: `${formatIp(spec.ip)}/${spec.prefixLen}` }, 'uplink attached');
  }

  /** The host link: a TAP in the daemon's namespace, addressed, with a route to each network through the router. */
  async setHostLink(): Promise<void> {
    const port = new Port(this.portIds.alloc(), 'host-link');
    const dev = new TapDevice(this.native, this.pool, port, 'usernet%d', { offload: this.offload });
    try {
      await netns.configureHostLink(dev.ifname, `${HOST_LINK.kernelIp}/${HOST_LINK.prefixLen}`);
    } catch (e) {
      dev.close();
      throw e;
    }
    const iface = this.router.addInterface({
      kind: 'host',
      port,
      side: 'device',
      ip: HOST_LINK.routerIp,
      prefixLen: HOST_LINK.prefixLen,
      mac: HOST_LINK_MAC,
      mtu: 1500,
    });
    this.addDevice(dev);
    this.hostLink = { dev, iface };
  }

  addBridge(spec: BridgeSpec, subnet: string, hooks?: DhcpHooks): Promise<void> {
    if (this.networks.has(spec.id)) return Promise.resolve();
    const net = new BridgeNetwork(this.ctx, spec);
    this.networks.set(spec.id, net);
    if (hooks) this.startDhcp(net, hooks);
    this.log.debug({ network: spec.name }, 'bridge network up');
    if (!this.hostLink) return Promise.resolve();
    return netns.setRoute(subnet, formatIp(HOST_LINK.routerIp), this.hostLink.dev.ifname);
  }

  /**
   * The network's DHCP server at its gateway (router and DNS = the gateway),
   * handing out the upper half of the subnet (containers are allocated from
   * the bottom). Subnets smaller than /30 get none.
   */
  private startDhcp(net: BridgeNetwork, hooks: DhcpHooks): void {
    const { prefixLen: p, gatewayIp: gw, gatewayMac } = net.spec;
    if (p < 1 || p > 30) return;
    const size = 2 ** (32 - p);
    const subnet = (gw - (gw % size)) >>> 0;
    const rangeFirst = subnet + size / 2;
    const rangeLast = subnet + size - 2;
    const held = new Set<number>();
    const server = new DhcpServer(
      this.pool,
      {
        serverIp: gw,
        serverMac: gatewayMac,
        subnet,
        prefixLen: p,
        router: gw,
        dns: [gw],
        leaseSeconds: DHCP_LEASE_SECONDS,
        rangeFirst,
        rangeLast,
        isFree: (ip) => ip >= rangeFirst && ip <= rangeLast && ip !== gw && !held.has(ip) && !hooks.containerHolds(ip),
        claim: (ip) => {
          if (held.has(ip)) return false;
          held.add(ip);
          return true;
        },
        release: (ip) => void held.delete(ip),
      },
      { seed: this.seed },
    );
    const element = { process: () => undefined, tick: (now: number) => server.tick(now) };
    this.router.setUdpService(net.iface, 67, server);
    this.engine.addElement(element);
    let dns: GatewayDns | null = null;
    if (hooks.resolve) {
      const iface = net.iface;
      dns = new GatewayDns(this.pool, {
        gatewayIp: gw,
        gatewayMac,
        resolve: hooks.resolve,
        send: (h) => {
          // the network may be gone by the time an answer arrives
          if (this.dhcp.get(net.spec.id)?.dns !== dns) return this.pool.free(h);
          this.router.sendFrom(iface, h);
          this.engine.wake();
        },
      });
      this.router.setUdpService(iface, 53, dns);
    }
    this.dhcp.set(net.spec.id, { server, held, element, dns });
  }

  private stopDhcp(networkId: string): void {
    const d = this.dhcp.get(networkId);
    const net = this.networks.get(networkId);
    if (!d || !net) return;
    this.router.setUdpService(net.iface, 67, null);
    if (d.dns) this.router.setUdpService(net.iface, 53, null);
    this.engine.removeElement(d.element);
    this.dhcp.delete(networkId);
  }

  /** Addresses the network's DHCP server holds (offered, bound or declined). */
  dhcpHeld(networkId: string): Iterable<number> {
    return this.dhcp.get(networkId)?.held ?? [];
  }

  /**
   * An endpoint on the network's switch, like a container port: a TAP named
   * `ifname` in the daemon's namespace, a unix socket a QEMU VM connects to
   * (stream: QEMU's 4-byte length framing; dgram: one frame a datagram), or
   * an existing interface read with AF_PACKET. Returns what was made (the
   * TAP's name, the socket path or the interface).
   */
  attachDevice(name: string, networkId: string, spec: AttachSpec): string {
    const net = this.networks.get(networkId);
    if (!net || this.attachments.has(name)) throw new Error('internal: attach on unknown network or taken name');
    const what = spec.kind === 'tap' || spec.kind === 'iface' ? spec.ifname : spec.path;
    const port = new Port(this.portIds.alloc(), `${name}:${what}`);
    let dev: AttachDevice;
    try {
      if (spec.kind === 'tap') dev = new TapDevice(this.native, this.pool, port, spec.ifname, { offload: this.offload });
      else if (spec.kind === 'iface') dev = new PacketDevice(this.native, this.pool, port, spec.ifname, { promisc: true, offload: this.offload });
      else if (spec.kind === 'qemu-dgram') dev = new QemuDgramDevice(this.native, this.pool, port, spec.path, qemuDgramPeer(spec.path));
      else dev = new QemuStreamDevice(this.native, this.pool, port, spec.path);
    } catch (e) {
      this.portIds.release(port.id);
      throw e;
    }
    net.attach(port);
    this.engine.addDevice(dev);
    dev.watch(() => this.engine.readyNow());
    this.attachments.set(name, { networkId, dev });
    this.engine.wake();
    return dev instanceof TapDevice ? dev.ifname : what;
  }

  detachDevice(name: string): void {
    const a = this.attachments.get(name);
    if (!a) return;
    this.attachments.delete(name);
    this.networks.get(a.networkId)?.detach(a.dev.port);
    this.engine.removeDevice(a.dev);
    for (const ring of [a.dev.port.rx, a.dev.port.tx]) while (!ring.empty) this.pool.free(ring.pop());
    a.dev.close();
    this.portIds.release(a.dev.port.id);
  }

  /** Published port: DNAT at usernet's addresses (0.0.0.0 or the uplink address) and/or a userland proxy on 127.0.0.1. */
  async publish(p: PublishSpec): Promise<void> {
    const proto = p.proto === 'tcp' ? 6 : 17;
    const viaRouter = p.hostIp === '0.0.0.0' || (this.uplink !== null && p.hostIp === formatIp(this.uplink.spec.ip));
    const viaProxy = p.hostIp === '0.0.0.0' || p.hostIp === '127.0.0.1';
    if (!viaRouter && !viaProxy) {
      const ups = this.uplink ? `, ${formatIp(this.uplink.spec.ip)}` : '';
      throw new Error(`cannot publish on ${p.hostIp}: usernet's addresses are 0.0.0.0, 127.0.0.1${ups}`);
    }
    if (viaProxy) {
      const key = `${p.proto}/127.0.0.1/${p.hostPort}`;
      const proxy = new UserlandProxy();
      await proxy.start({ proto: p.proto, hostIp: '127.0.0.1', hostPort: p.hostPort, targetIp: p.targetIp, targetPort: p.targetPort });
      this.proxies.set(key, proxy);
    }
    if (viaRouter) this.router.publish({ proto, hostPort: p.hostPort, targetIp: parseIpNum(p.targetIp), targetPort: p.targetPort });
  }

  async unpublish(p: PublishSpec): Promise<void> {
    const proto = p.proto === 'tcp' ? 6 : 17;
    if (p.hostIp !== '127.0.0.1') this.router.unpublish({ proto, hostPort: p.hostPort, targetIp: parseIpNum(p.targetIp), targetPort: p.targetPort });
    const key = `${p.proto}/127.0.0.1/${p.hostPort}`;
    const proxy = this.proxies.get(key);
    if (proxy) {
      this.proxies.delete(key);
      await proxy.stop();
    }
  }

  /** A macvlan/ipvlan network on its parent interface (no router, no DHCP). */
  addParentNetwork(spec: Omit<ParentSpec, 'parentMac'>): ParentNetwork {
    return this.parents.add(spec);
  }

  removeNetwork(id: string, subnet?: string): void {
    if (this.parents.nets.has(id)) {
      for (const cid of this.containers.keys()) this.unplug(cid, id);
      this.parents.remove(id);
      return;
    }
    const n = this.networks.get(id);
    if (!n) return;
    if (subnet && this.hostLink) void netns.deleteRoute(subnet).catch(() => undefined);
    const sinks = this.networkSinks.get(id);
    if (sinks) for (const s of [...sinks.sessions]) s.finish();
    for (const [name, a] of this.attachments) if (a.networkId === id) this.detachDevice(name);
    this.stopDhcp(id);
    this.overlay?.remove(id);
    n.destroy();
    this.networks.delete(id);
  }

  /** Make the container's namespace (or note that it shares the daemon's). */
  async createContainer(id: string, name: string, ns: string | null): Promise<void> {
    if (ns !== null) {
      if (await netns.netnsExists(ns)) {
        // only a namespace this daemon made (a daemon that died without cleaning up) is removed; any other is refused
        if (!this.netnsLedger.has(ns))
          throw new Error(`namespace ${ns} already exists and was not made by this usernet daemon: choose another container name or --netns-prefix`);
        this.log.warn({ netns: ns }, 'removing stale namespace');
        await netns.deleteNetns(ns);
      }
      this.netnsLedger.add(ns);
      try {
        await netns.createNetns(ns);
      } catch (e) {
        if (!(await netns.netnsExists(ns))) this.netnsLedger.remove(ns);
        throw e;
      }
    }
    this.containers.set(id, { name, netns: ns, endpoints: [] });
  }

  /** Open a TAP for the container on a network, move it in, configure it, attach it to the switch. */
  async plug(containerId: string, networkId: string, ep: EndpointPlug): Promise<void> {
    const c = this.containers.get(containerId);
    const net = this.networks.get(networkId) ?? this.parents.nets.get(networkId);
    if (!c || !net || c.netns === null) throw new Error('internal: plug on unknown container or network');
    const ip = parseIpNum(ep.cidr.split('/')[0]);
    const mac = net instanceof ParentNetwork ? formatMac(net.endpointMac(macToNumber(ep.mac))) : ep.mac;
    const port = new Port(this.portIds.alloc(), `${c.name}:${ep.ifname}`);
    let dev: TapDevice;
    try {
      dev = new TapDevice(this.native, this.pool, port, 'un%d', { offload: (net.spec.offload ?? this.offload) });
    } catch (e) {
      this.portIds.release(port.id);
      throw e;
    }
    try {
      await netns.plugEndpoint(c.netns, { tap: dev.ifname, ifname: ep.ifname, mac, mtu: net.spec.mtu, cidr: ep.cidr });
    } catch (e) {
      dev.close();
      this.portIds.release(port.id);
      throw e;
    }
    try {
      net.attach(port, { mac: macToNumber(mac), ip }); // refuses e.g. a second macvlan passthru endpoint
    } catch (e) {
      dev.close();
      this.portIds.release(port.id);
      throw e;
    }
    this.addDevice(dev);
    c.endpoints.push({ networkId, ifname: ep.ifname, dev });
    this.engine.wake();
  }

  /** Detach and close the container's TAP on a network (the interface disappears from the namespace). */
  unplug(containerId: string, networkId: string): void {
    const c = this.containers.get(containerId);
    if (!c) return;
    const i = c.endpoints.findIndex((e) => e.networkId === networkId);
    if (i < 0) return;
    const [ep] = c.endpoints.splice(i, 1);
    this.closeEndpoint(ep);
  }

  private closeEndpoint(ep: LiveEndpoint): void {
    (this.networks.get(ep.networkId) ?? this.parents.nets.get(ep.networkId))?.detach(ep.dev.port);
    this.engine.removeDevice(ep.dev);
    const sinks = ep.dev.captureSink as SinkSet | null;
    if (sinks) for (const s of [...sinks.sessions]) s.finish();
    ep.dev.close();
    this.portIds.release(ep.dev.port.id);
  }

  async setDefaultRoute(containerId: string, gateway: string | null, ifname?: string): Promise<void> {
    const c = this.containers.get(containerId);
    if (!c || c.netns === null) return;
    await netns.setDefaultRoute(c.netns, gateway, ifname);
  }

  async removeContainer(containerId: string): Promise<void> {
    const c = this.containers.get(containerId);
    if (!c) return;
    for (const ep of c.endpoints) this.closeEndpoint(ep);
    c.endpoints = [];
    this.containers.delete(containerId);
    if (c.netns === null) return;
    try {
      await netns.deleteNetns(c.netns);
      this.netnsLedger.remove(c.netns);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'netns delete failed');
    }
  }

  async shutdown(): Promise<void> {
    for (const proxy of this.proxies.values()) await proxy.stop().catch(() => undefined);
    this.proxies.clear();
    for (const id of [...this.containers.keys()]) await this.removeContainer(id);
    for (const name of [...this.attachments.keys()]) this.detachDevice(name);
    for (const id of [...this.networks.keys()]) this.removeNetwork(id);
    this.parents.close();
    for (const link of [this.uplink, this.hostLink]) {
      if (!link) continue;
      this.router.removeInterface(link.iface);
      this.engine.removeDevice(link.dev);
      link.dev.close();
    }
    this.uplink = null;
    this.hostLink = null;
    this.engine.stop();
  }

  /** Capture every frame entering a network's switch. */
  captureNetwork(networkId: string, out: NodeJS.WritableStream & import('node:stream').Writable, limit: number): CaptureSession {
    const net = this.networks.get(networkId);
    if (!net) throw new Error('internal: capture on unknown network');
    let set = this.networkSinks.get(networkId);
    if (!set) {
      set = new SinkSet();
      this.networkSinks.set(networkId, set);
    }
    const s = new CaptureSession(this.pool, out, limit, (done) => {
      if (set!.remove(done)) {
        net.sw.sink = null;
        this.networkSinks.delete(networkId);
      }
    });
    set.sessions.push(s);
    net.sw.sink = set;
    return s;
  }

  /** Capture every frame a container sends or receives, on all its interfaces. */
  captureContainer(containerId: string, out: import('node:stream').Writable, limit: number): CaptureSession {
    const c = this.containers.get(containerId);
    if (!c) throw new Error('internal: capture on unknown container');
    const devs = c.endpoints.map((e) => e.dev);
    const s = new CaptureSession(this.pool, out, limit, (done) => {
      for (const d of devs) {
        const set = d.captureSink as SinkSet | null;
        if (set && set.remove(done)) d.captureSink = null;
      }
    });
    for (const d of devs) {
      let set = d.captureSink as SinkSet | null;
      if (!set) {
        set = new SinkSet();
        d.captureSink = set;
      }
      set.sessions.push(s);
    }
    return s;
  }

  endpointsOf(containerId: string): LiveEndpoint[] {
    return this.containers.get(containerId)?.endpoints ?? [];
  }
}
