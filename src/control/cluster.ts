/**
 * Cluster — the overlay control plane on etcd (npm etcd3), shared by every
 * daemon started with `--cluster etcd://HOST:PORT --advertise IP`.
 *
 * Keys (under /usernet/v1/):
 *   networks/<id>               {network, vni, udpPort, owner}       no lease
 *   names/<name>                <id>  (a name is taken once)          no lease
 *   vni/<vni>                   <id>  (a VNI is taken once)           no lease
 *   keys/<id>                   {keys:[{id,key,activeFrom}]}          no lease
 *   hosts/<host>                {vtep}                                lease
 *   endpoints/<id>/<host>/<ep>  {container, aliases, ip, mac, vtep…}  lease
 *   ipam/<id>/<ip>              {host, endpointId}                     lease
 *
 * Uniqueness (a network name, a VNI, an address) is decided by etcd
 * transactions that create a key only if it does not exist. Everything a
 * daemon owns at run time lives under its lease (TTL `ttlSeconds`), so when
 * the daemon dies its records vanish once the lease expires; a daemon that
 * loses its lease (etcd away for longer than the TTL) takes a new one and
 * writes its records again. A watch on the whole prefix keeps an in-memory
 * mirror (networks, endpoints, keys, hosts, claims) which the daemon
 * reconciles its dataplane against; while etcd is away the mirror stays as
 * it was, so forwarding goes on with what is known, and the watch catches
 * up from its last revision when etcd is back.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Etcd3, type Lease, type Namespace, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { Network } from './records.js';

export interface ClusterNetwork {
  network: Network;
  vni: number;
  udpPort: number;
  /** the host that created it */
  owner: string;
}

export interface ClusterEndpoint {
  host: string;
  vtep: string;
  networkId: string;
  endpointId: string;
  containerId: string;
  container: string;
  hostname: string;
  aliases: string[];
  ip: string;
  mac: string;
}

export interface ClusterKey {
  id: number;
  /** base64, 32 bytes */
  key: string;
  /** ms since the epoch: senders use it from then on */
  activeFrom: number;
}

export interface ClusterOptions {
  /** etcd://HOST:PORT */
  url: string;
  /** this host's VTEP address (also its name in the cluster) */
  advertise: string;
  ttlSeconds?: number;
  /** give up reaching etcd at start after this long */
  connectTimeoutMs?: number;
}

const PREFIX = '/usernet/v1/';
/** senders switch to a new key this long after it is written (receivers have it by then) */
export const KEY_ACTIVATION_DELAY_MS = 2000;
/** keys kept per network (the newest ones): older senders still decrypt */
const KEYS_KEPT = 3;

export function parseClusterUrl(url: string): string {
  const m = /^etcd:\/\/([^/:]+):(\d{1,5})\/?$/.exec(url);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new Error(`invalid --cluster "${url}": expected etcd://HOST:PORT`);
  }
  return `http://${m[1]}:${m[2]}`;
}

export class Cluster extends EventEmitter {
  readonly host: string;
  readonly networks = new Map<string, ClusterNetwork>();
  readonly endpoints = new Map<string, ClusterEndpoint>();
  readonly keys = new Map<string, ClusterKey[]>();
  readonly hosts = new Map<string, { vtep: string }>();
  /** addresses claimed on each network (by any host) */
  readonly claims = new Map<string, Map<number, string>>();
  private readonly client: Etcd3;
  private readonly kv: Namespace;
  private lease: Lease | null = null;
  private watcher: Watcher | null = null;
  /** what this daemon keeps under its lease, written again on a new lease */
  private readonly mine = new Map<string, string>();
  private closed = false;
  /** deletes of our records that etcd has not seen yet */
  private readonly unsent = new Set<string>();
  private retry: NodeJS.Timeout | null = null;
  private readonly ttl: number;
  connected = false;

  private constructor(
    private readonly opts: ClusterOptions,
    private readonly log: Logger,
  ) {
    super();
    this.host = opts.advertise;
    this.ttl = opts.ttlSeconds ?? 15;
    this.client = new Etcd3({
      hosts: parseClusterUrl(opts.url),
      dialTimeout: opts.connectTimeoutMs ?? 3000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
    });
    this.kv = this.client.namespace(PREFIX);
  }

  /** Reach etcd (a clear error if it cannot), take a lease, load everything, start watching. */
  static async connect(opts: ClusterOptions, log: Logger): Promise<Cluster> {
    const c = new Cluster(opts, log);
    try {
      await c.load();
      await c.newLease();
    } catch (e) {
      c.client.close();
      throw new Error(`cannot reach etcd at ${opts.url}: ${(e as Error).message.split('\n')[0]}`);
    }
    await c.putMine(`hosts/${c.host}`, JSON.stringify({ vtep: c.host }));
    return c;
  }

  private async load(): Promise<void> {
    const res = await this.kv.getAll().prefix('').exec();
    for (const kv of res.kvs) this.apply('put', kv.key.toString(), kv.value.toString());
    this.connected = true;
    const rev = String(Number(res.header.revision) + 1);
    const w = await this.kv.watch().prefix('').startRevision(rev).create();
    w.on('put', (kv) => this.onEvent('put', kv.key.toString(), kv.value.toString()));
    w.on('delete', (kv) => this.onEvent('delete', kv.key.toString(), ''));
    w.on('disconnected', () => {
      if (this.connected) this.log.warn('etcd unreachable: forwarding goes on with what is known');
      this.connected = false;
    });
    w.on('connected', () => {
      if (!this.connected) this.log.info('etcd reachable again');
      this.connected = true;
    });
    w.on('error', (e) => this.log.warn({ err: String(e) }, 'etcd watch error'));
    this.watcher = w;
  }

  private onEvent(op: 'put' | 'delete', key: string, value: string): void {
    // the namespace strips the prefix from watch events only in some versions
    if (key.startsWith(PREFIX)) key = key.slice(PREFIX.length);
    this.apply(op, key, value);
    this.emit('change', key);
  }

  private apply(op: 'put' | 'delete', key: string, value: string): void {
    const parts = key.split('/');
    try {
      switch (parts[0]) {
        case 'networks':
          if (op === 'put') this.networks.set(parts[1], JSON.parse(value));
          else this.networks.delete(parts[1]);
          break;
        case 'endpoints':
          if (op === 'put') this.endpoints.set(key, JSON.parse(value));
          else this.endpoints.delete(key);
          break;
        case 'keys':
          if (op === 'put') this.keys.set(parts[1], (JSON.parse(value) as { keys: ClusterKey[] }).keys);
          else this.keys.delete(parts[1]);
          break;
        case 'hosts':
          if (op === 'put') this.hosts.set(parts[1], JSON.parse(value));
          else this.hosts.delete(parts[1]);
          break;
        case 'ipam': {
          let m = this.claims.get(parts[1]);
          if (!m) this.claims.set(parts[1], (m = new Map()));
          const ip = ipNum(parts[2]);
          if (op === 'put') m.set(ip, (JSON.parse(value) as { host: string }).host);
          else m.delete(ip);
          break;
        }
      }
    } catch (e) {
      this.log.warn({ key, err: (e as Error).message }, 'ignoring a malformed cluster record');
    }
  }

  private async newLease(): Promise<void> {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    await lease.grant();
    lease.on('lost', (err) => {
      if (this.closed || this.lease !== lease) return;
      this.log.warn({ err: err.message }, 'etcd lease lost: taking a new one and writing our records again');
      void this.relet();
    });
    this.lease = lease;
  }

  private async relet(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        this.lease?.release();
        await this.newLease();
        for (const [k, v] of this.mine) await this.lease!.put(PREFIX + k).value(v);
        this.log.info({ records: this.mine.size }, 'rejoined the cluster');
        return;
      } catch {
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** attempt)));
      }
    }
  }

  private async putMine(key: string, value: string): Promise<void> {
    this.mine.set(key, value);
    this.unsent.delete(key);
    await this.lease!.put(PREFIX + key).value(value);
  }

  /** Withdraw one of our records; while etcd is away the delete is retried until it lands. */
  private async deleteMine(key: string): Promise<void> {
    this.mine.delete(key);
    try {
      await this.kv.delete().key(key);
    } catch (e) {
      this.unsent.add(key);
      if (!this.retry) {
        this.retry = setInterval(() => void this.flushDeletes(), 2000);
        this.retry.unref();
      }
      throw e;
    }
  }

  private async flushDeletes(): Promise<void> {
    for (const key of [...this.unsent]) {
      try {
        await this.kv.delete().key(key);
        this.unsent.delete(key);
      } catch {
        return; // still away
      }
    }
    if (this.unsent.size === 0 && this.retry) {
      clearInterval(this.retry);
      this.retry = null;
    }
  }

  // ----------------------------------------------------------- networks

  /** The VNIs in use (known from the mirror). */
  usedVnis(): Set<number> {
    return new Set([...this.networks.values()].map((n) => n.vni));
  }

  /**
   * Create a network cluster-wide: its name and VNI must both be free.
   * Throws the user-facing error when another host took either first.
   */
  async createNetwork(rec: ClusterNetwork): Promise<void> {
    const n = rec.network;
    const res = await this.kv
      .if(`names/${n.name}`, 'Create', '==', 0)
      .and(`vni/${rec.vni}`, 'Create', '==', 0)
      .then(
        this.kv.put(`names/${n.name}`).value(n.id),
        this.kv.put(`vni/${rec.vni}`).value(n.id),
        this.kv.put(`networks/${n.id}`).value(JSON.stringify(rec)),
      )
      .commit();
    if (!res.succeeded) {
      const [byName, byVni] = await Promise.all([this.kv.get(`names/${n.name}`).string(), this.kv.get(`vni/${rec.vni}`).string()]);
      if (byName !== null) throw new Error(`network with name ${n.name} already exists in the cluster`);
      if (byVni !== null) throw new Error(`VNI ${rec.vni} is already used by another overlay network`);
      throw new Error('cluster transaction failed; try again');
    }
    this.networks.set(n.id, rec);
  }

  async putKeys(networkId: string, keys: ClusterKey[]): Promise<void> {
    await this.kv.put(`keys/${networkId}`).value(JSON.stringify({ keys }));
    this.keys.set(networkId, keys);
  }

  /**
   * Add a fresh key if the newest one is older than `everyMs` (only one
   * host wins the race: the write is conditional on the version read).
   */
  async rotateKey(networkId: string, everyMs: number, now = Date.now()): Promise<boolean> {
    const cur = await this.kv.get(`keys/${networkId}`).exec();
    const kv = cur.kvs[0];
    const keys: ClusterKey[] = kv ? (JSON.parse(kv.value.toString()) as { keys: ClusterKey[] }).keys : [];
    const newest = keys.reduce((a, k) => Math.max(a, k.activeFrom), 0);
    if (keys.length > 0 && now - newest < everyMs) return false;
    const id = keys.reduce((a, k) => Math.max(a, k.id), 0) + 1;
    const next = [...keys, { id, key: randomBytes(32).toString('base64'), activeFrom: keys.length === 0 ? now : now + KEY_ACTIVATION_DELAY_MS }].slice(
      -KEYS_KEPT,
    );
    const res = await this.kv
      .if(`keys/${networkId}`, 'Mod', '==', kv ? Number(kv.mod_revision) : 0)
      .then(this.kv.put(`keys/${networkId}`).value(JSON.stringify({ keys: next })))
      .commit();
    if (res.succeeded) this.keys.set(networkId, next);
    return res.succeeded;
  }

  /** Remove a network cluster-wide; refused while any host has an endpoint on it. */
  async removeNetwork(n: Network): Promise<void> {
    const eps = await this.kv.getAll().prefix(`endpoints/${n.id}/`).keys();
    if (eps.length > 0) throw new Error(`error while removing network: network ${n.name} has active endpoints (on another host)`);
    const rec = this.networks.get(n.id);
    const ops = [this.kv.delete().key(`networks/${n.id}`), this.kv.delete().key(`names/${n.name}`), this.kv.delete().key(`keys/${n.id}`)];
    if (rec) ops.push(this.kv.delete().key(`vni/${rec.vni}`));
    await Promise.all(ops);
    this.networks.delete(n.id);
  }

  // ---------------------------------------------------------- endpoints

  /** Addresses of a network claimed by other hosts (never handed out here). */
  claimedElsewhere(networkId: string): number[] {
    const m = this.claims.get(networkId);
    if (!m) return [];
    const out: number[] = [];
    for (const [ip, host] of m) if (host !== this.host) out.push(ip);
    return out;
  }

  /** Claim an address on a network for one of our endpoints; false if another host has it. */
  async claim(networkId: string, ip: string, endpointId: string): Promise<boolean> {
    const key = `ipam/${networkId}/${ip}`;
    const value = JSON.stringify({ host: this.host, endpointId });
    const res = await this.kv
      .if(key, 'Create', '==', 0)
      .then(this.kv.put(key).value(value).lease(this.lease!.grant()))
      .else(this.kv.get(key))
      .commit();
    if (!res.succeeded) {
      const got = res.responses[0]?.response_range?.kvs?.[0]?.value?.toString() ?? '';
      let owner = '';
      try {
        owner = (JSON.parse(got) as { host: string }).host;
      } catch {
        /* unreadable: not ours */
      }
      if (owner !== this.host) return false;
    }
    await this.putMine(key, value); // ours (also after a restart, while the old lease lives on)
    return true;
  }

  async release(networkId: string, ip: string): Promise<void> {
    await this.deleteMine(`ipam/${networkId}/${ip}`);
  }

  async putEndpoint(ep: Omit<ClusterEndpoint, 'host' | 'vtep'>): Promise<void> {
    const rec: ClusterEndpoint = { ...ep, host: this.host, vtep: this.host };
    await this.putMine(`endpoints/${ep.networkId}/${this.host}/${ep.endpointId}`, JSON.stringify(rec));
  }

  async deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    await this.deleteMine(`endpoints/${networkId}/${this.host}/${endpointId}`);
  }

  /** Endpoints of a network on other hosts. */
  remoteEndpoints(networkId: string): ClusterEndpoint[] {
    const out: ClusterEndpoint[] = [];
    for (const ep of this.endpoints.values()) if (ep.networkId === networkId && ep.host !== this.host) out.push(ep);
    return out;
  }

  /** Leave: our leased records go at once (a clean stop), the rest stays. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearInterval(this.retry);
    await this.watcher?.cancel().catch(() => undefined);
    await this.lease?.revoke().catch(() => undefined);
    this.client.close();
  }
}

function ipNum(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}
