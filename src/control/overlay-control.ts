/**
 * OverlayControl — the daemon's overlay driver: creating and removing
 * overlay networks (cluster-wide through etcd when the daemon has
 * --cluster, or local with static `-o peers=`), registering this host's
 * endpoints (address claims and endpoint records under the daemon's lease),
 * and reconciling the dataplane with the cluster mirror after every change:
 * networks other hosts created appear here (adopted into the State and
 * brought up), networks they removed go, VTEP tables follow the endpoint
 * records, keys of encrypted networks are installed and rotated, and names
 * of remote endpoints resolve in the embedded DNS.
 */
import type { Logger } from 'pino';
import { formatIp, macToNumber, parseIp } from '../services/ipam.js';
import { Cluster, type ClusterEndpoint } from './cluster.js';
import type { Container, Endpoint, Network, NetworkSpec, State } from './model.js';
import {
  isEncrypted,
  keyRotationMs,
  overlayPeers,
  overlayPort,
  overlayVni,
  pickVni,
  VNI_OPTION,
} from './overlay-options.js';
import { OverlayPlane } from './overlay-plane.js';
import type { Runtime } from './runtime.js';

/** Another host claimed the address first (the caller may pick another and retry). */
export class AddressConflict extends Error {}

export interface OverlayDeps {
  state: State;
  runtime: Runtime;
  log: Logger;
  /** run a state-changing step one at a time with the API's own */
  serial<T>(fn: () => Promise<T>): Promise<T>;
  /** bring a network up / down in the dataplane */
  bringUpNetwork(n: Network): Promise<void>;
  persist(): void;
}

export class OverlayControl {
  readonly plane: OverlayPlane;
  private pending: NodeJS.Timeout | null = null;
  private knownHosts = new Set<string>();
  private rotateTimer: NodeJS.Timeout | null = null;
  private started = false;
  /** addresses lost in a claim race, kept out of allocation until the mirror shows the winner's claim (ms expiry) */
  private readonly lost = new Map<string, Map<number, number>>();

  private constructor(
    private readonly d: OverlayDeps,
    readonly cluster: Cluster | null,
    readonly advertise: string | null,
  ) {
    this.plane = new OverlayPlane(d.runtime, advertise ? parseIp(advertise) : 0, d.log);
    d.runtime.overlay = this.plane;
    if (cluster) {
      cluster.on('change', () => this.schedule());
      this.knownHosts = new Set(cluster.hosts.keys());
      this.rotateTimer = setInterval(() => void this.rotateKeys(), 1000);
      this.rotateTimer.unref();
    }
  }

  static async start(d: OverlayDeps, opts: { cluster?: string; advertise?: string; ttlSeconds?: number }): Promise<OverlayControl> {
    if (opts.advertise !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(opts.advertise)) {
      throw new Error(`invalid --advertise "${opts.advertise}": expected this host's IPv4 address on the underlay`);
    }
    if (opts.cluster && !opts.advertise) throw new Error('--cluster needs --advertise IP (this host\'s address on the underlay)');
    const cluster = opts.cluster ? await Cluster.connect({ url: opts.cluster, advertise: opts.advertise!, ttlSeconds: opts.ttlSeconds }, d.log) : null;
    if (cluster) d.log.info({ cluster: opts.cluster, advertise: opts.advertise, networks: cluster.networks.size }, 'joined the cluster');
    return new OverlayControl(d, cluster, opts.advertise ?? null);
  }

  /** Addresses other hosts hold on a network (the allocator skips them). */
  claimedElsewhere(networkId: string): number[] {
    const out = this.cluster?.claimedElsewhere(networkId) ?? [];
    const lost = this.lost.get(networkId);
    if (lost) {
      const now = Date.now();
      for (const [ip, until] of lost) {
        if (until < now) lost.delete(ip);
        else out.push(ip);
      }
    }
    return out;
  }

  // ----------------------------------------------------------- networks

  /** `network create -d overlay`: pick the VNI, create it here, then cluster-wide (all or nothing). */
  async createNetwork(spec: NetworkSpec): Promise<Network> {
    const opts = { ...(spec.options ?? {}) };
    if (!this.cluster && opts.peers === undefined) {
      throw new Error('overlay networks need the daemon started with --cluster etcd://HOST:PORT --advertise IP, or static VTEPs with -o peers=IP[,IP]');
    }
    if (opts.encrypted !== undefined && opts.encrypted !== 'false' && !this.cluster) {
      throw new Error('encrypted overlay networks need --cluster: their keys are distributed through etcd');
    }
    const fixedVni = opts.vni ?? opts[VNI_OPTION];
    for (let attempt = 0; ; attempt++) {
      const used = new Set([...(this.cluster?.usedVnis() ?? []), ...this.d.state.networks().filter((n) => n.driver === 'overlay').map(overlayVni)]);
      const vni = fixedVni !== undefined ? Number(fixedVni) : pickVni(used);
      if (fixedVni !== undefined && /^[0-9]+$/.test(fixedVni) && used.has(vni)) throw new Error(`VNI ${vni} is already used by another overlay network`);
      const n = this.d.state.createNetwork({ ...spec, driver: 'overlay', scope: this.cluster ? 'swarm' : 'local', options: { ...opts, [VNI_OPTION]: String(vni) } });
      if (!this.cluster) return n;
      try {
        await this.cluster.createNetwork({ network: n, vni, udpPort: overlayPort(n), owner: this.cluster.host });
        if (isEncrypted(n)) await this.cluster.rotateKey(n.id, 0);
        return n;
      } catch (e) {
        this.d.state.removeNetwork(n.id);
        const vniRace = /VNI .* already used/.test((e as Error).message);
        if (vniRace && fixedVni === undefined && attempt < 5) continue;
        throw e;
      }
    }
  }

  /** Removal cluster-wide (refused while another host has endpoints on it). */
  async removeNetwork(n: Network): Promise<void> {
    if (n.scope === 'swarm' && this.cluster) await this.cluster.removeNetwork(n);
  }

  /** Join the network's switch to its VTEP (the runtime built the switch and gateway). */
  bringUp(n: Network): void {
    const net = this.d.runtime.networks.get(n.id);
    if (!net) return;
    this.plane.add(n.id, net, { vni: overlayVni(n), udpPort: overlayPort(n), peers: overlayPeers(n), encrypted: isEncrypted(n) });
    this.program(n);
  }

  // ---------------------------------------------------------- endpoints

  private clustered(networkId: string): Network | null {
    const n = this.d.state.networkById(networkId);
    return n && n.driver === 'overlay' && n.scope === 'swarm' && this.cluster ? n : null;
  }

  /** Claim the addresses and publish the records of a container's overlay endpoints; all or nothing. */
  async register(c: Container, eps: readonly Endpoint[] = c.endpoints): Promise<void> {
    const done: Endpoint[] = [];
    try {
      for (const ep of eps) {
        const n = this.clustered(ep.networkId);
        if (!n) continue;
        if (!(await this.cluster!.claim(n.id, ep.ip, ep.endpointId))) {
          let lost = this.lost.get(n.id);
          if (!lost) this.lost.set(n.id, (lost = new Map()));
          lost.set(parseIp(ep.ip), Date.now() + 30_000);
          throw new AddressConflict(`address ${ep.ip} is already in use on network ${n.name} (by another host)`);
        }
        done.push(ep);
        await this.cluster!.putEndpoint({
          networkId: n.id,
          endpointId: ep.endpointId,
          containerId: c.id,
          container: c.name,
          hostname: c.hostname,
          aliases: [...ep.aliases],
          ip: ep.ip,
          mac: ep.mac,
        });
      }
    } catch (e) {
      await this.unregister(c, done);
      if (e instanceof AddressConflict) throw e;
      throw new Error(`cannot register the endpoint in the cluster: ${(e as Error).message}`);
    }
  }

  /** Withdraw a container's overlay endpoints (best effort: retried by the cluster while etcd is away). */
  async unregister(c: Container, eps: readonly Endpoint[] = c.endpoints): Promise<void> {
    for (const ep of eps) {
      if (!this.clustered(ep.networkId)) continue;
      await this.cluster!.deleteEndpoint(ep.networkId, ep.endpointId).catch(() => undefined);
      await this.cluster!.release(ep.networkId, ep.ip).catch(() => undefined);
    }
  }

  /** Containers on other hosts, as the embedded DNS needs them (name, aliases, address per network). */
  remoteContainers(): Container[] {
    if (!this.cluster) return [];
    const byCtr = new Map<string, { ep: ClusterEndpoint; eps: Endpoint[] }>();
    for (const ep of this.cluster.endpoints.values()) {
      if (ep.host === this.cluster.host || !this.d.state.networkById(ep.networkId)) continue;
      const key = `${ep.host}/${ep.containerId}`;
      let e = byCtr.get(key);
      if (!e) byCtr.set(key, (e = { ep, eps: [] }));
      e.eps.push({
        network: this.d.state.networkById(ep.networkId)!.name,
        networkId: ep.networkId,
        endpointId: ep.endpointId,
        ip: ep.ip,
        staticIp: false,
        mac: ep.mac,
        aliases: ep.aliases,
        ifname: '',
      });
    }
    return [...byCtr.values()].map(({ ep, eps }) => ({ id: ep.containerId, name: ep.container, hostname: ep.hostname, endpoints: eps }) as unknown as Container);
  }

  // ---------------------------------------------------------- reconcile

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      void this.d.serial(() => this.reconcile()).catch((e) => this.d.log.warn({ err: (e as Error).message }, 'overlay reconcile failed'));
    }, 20);
  }

  /** Make this host agree with the cluster mirror. */
  async reconcile(): Promise<void> {
    const cl = this.cluster;
    if (!cl) return;
    for (const rec of cl.networks.values()) {
      if (this.d.state.networkById(rec.network.id)) continue;
      try {
        const n = this.d.state.adoptNetwork({ ...rec.network, scope: 'swarm' });
        await this.d.bringUpNetwork(n);
        this.d.log.info({ network: n.name, vni: rec.vni }, 'overlay network from the cluster');
      } catch (e) {
        this.d.log.error({ network: rec.network.name, err: (e as Error).message }, 'cannot take the cluster network here');
      }
    }
    if (cl.connected) {
      for (const n of this.d.state.networks()) {
        if (n.scope !== 'swarm' || cl.networks.has(n.id)) continue;
        if (this.d.state.forgetNetwork(n.id)) {
          this.d.runtime.removeNetwork(n.id, n.subnet ?? undefined);
            this.d.log.info({ network: n.name }, 'overlay network removed by another host');
        }
      }
    }
    const hosts = new Set(cl.hosts.keys());
    for (const h of this.knownHosts) {
      if (hosts.has(h)) continue;
      this.plane.forgetVtep(parseIp(h));
      this.d.log.info({ host: h }, 'host left the cluster: its VTEP is forgotten');
    }
    this.knownHosts = hosts;
    if (!this.started) {
      // this run must seal with keys of its own (see OverlayPlane.setKeys): one fresh key per encrypted network in use here
      this.started = true;
      for (const n of this.d.state.networks()) {
        if (n.scope === 'swarm' && isEncrypted(n) && this.d.state.containersOn(n).length > 0) await cl.rotateKey(n.id, 0).catch(() => false);
      }
    }
    for (const n of this.d.state.networks()) if (n.driver === 'overlay') this.program(n);
    this.d.persist(); // always: the DNS table follows remote endpoints too
  }

  private program(n: Network): void {
    const cl = this.cluster;
    if (!cl || !this.plane.has(n.id)) return;
    this.plane.program(
      n.id,
      cl.remoteEndpoints(n.id).map((ep) => ({ mac: macToNumber(ep.mac), ip: parseIp(ep.ip), vtep: parseIp(ep.vtep) })),
    );
    const keys = cl.keys.get(n.id);
    if (keys) this.plane.setKeys(n.id, keys);
  }

  /** Each encrypted network with endpoints here gets a fresh key when its newest is older than key_rotation. */
  private async rotateKeys(): Promise<void> {
    const cl = this.cluster;
    if (!cl || !cl.connected) return;
    const now = Date.now();
    for (const n of this.d.state.networks()) {
      if (n.scope !== 'swarm' || !isEncrypted(n) || this.d.state.containersOn(n).length === 0) continue;
      const keys = cl.keys.get(n.id) ?? [];
      const newest = keys.reduce((a, k) => Math.max(a, k.activeFrom), 0);
      if (now - newest < keyRotationMs(n)) continue;
      try {
        if (await cl.rotateKey(n.id, keyRotationMs(n), now)) {
          this.d.log.info({ network: n.name }, 'overlay key rotated');
          this.program(n);
        }
      } catch (e) {
        this.d.log.warn({ network: n.name, err: (e as Error).message }, 'key rotation failed');
      }
    }
  }

  describe(n: Network): unknown {
    const live = this.plane.describe(n.id);
    if (!live) return null;
    return { ...live, entries: live.entries.map((e) => ({ ...e, mac: formatMac(e.mac) })) };
  }

  async close(): Promise<void> {
    if (this.pending) clearTimeout(this.pending);
    if (this.rotateTimer) clearInterval(this.rotateTimer);
    this.plane.close();
    await this.cluster?.close();
  }
}

function formatMac(m: number): string {
  return m.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}
