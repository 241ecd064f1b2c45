/**
 * The usernet daemon: holds every device and all state, serves the API
 * (JSON over HTTP) on a root-only unix socket, keeps the state in its state
 * dir and brings it back on start, and removes every namespace and TAP it
 * made when it stops (the process around it — lock, signals — is daemon-run.ts).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { makeCidr, macToNumber, parseIp, type ExistingSubnet } from '../services/ipam.js';
import { networkIcc, networkMtu, networkPrefixLen, outboundEndpoint, State, type Container, type Network, type PortBinding } from './model.js';
import { HOST_LINK, Runtime } from './runtime.js';
import { networkOffload, type StateOptions } from './records.js';
import { AttachmentStore } from './attachments.js';
import { NetnsLedger, writeJsonAtomic } from './state-dir.js';
import { serveCapture } from './capture.js';
import { serveConntrack } from './api-conntrack.js';
import { HttpError } from './http-error.js';
import { EmbeddedDns } from './embedded-dns.js';
import { composeDown, composeUp } from './compose-apply.js';
import { collectStats, statsTable, type StatsReport } from './stats.js';
import { parseUplink } from './uplink.js';
import { OverlayControl } from './overlay-control.js';
import { networkMode, parseParent } from './parent-options.js';
import { connectNetwork, createNetwork, disconnectNetwork, inspectNet, listNetworks, pruneNetworks, removeNetwork } from './api-networks.js';
import { containerPorts, createContainer, inspectCtr, listContainers, removeContainer } from './api-containers.js';
import { attach, detach, listAttachments } from './api-attachments.js';
import { AttachmentCreate, CaptureQuery, ComposeDown, ComposeUp, ContainerCreate, ListQuery, NetworkConnect, NetworkCreate, NetworkDisconnect, parseQuery, parseRequest } from './api-schema.js';
import { checkDeclaredLength, errorAnswer, parseTarget, readJsonBody, reply } from './api-http.js';
import type { z } from 'zod';

/** the answer to a request that arrives while the daemon stops */
const SHUTTING_DOWN = 'the usernet daemon is shutting down; nothing was changed';

/** drivers this daemon builds */
const DRIVERS_BUILT = ['bridge', 'overlay', 'macvlan', 'ipvlan'] as const;

/** The State's options: the drivers, and the subnets of the daemon's own links (host link, uplink) that no network may take. */
function stateOptions(opts: DaemonOptions): StateOptions {
  const reserved: ExistingSubnet[] = [{ name: 'host-link', subnet: makeCidr(HOST_LINK.routerIp, HOST_LINK.prefixLen), what: "usernet's host link" }];
  if (opts.uplink) {
    const u = parseUplink(opts.uplink);
    reserved.push({ name: 'uplink', subnet: makeCidr(u.ip, u.prefixLen), what: `usernet's uplink ${u.name}` });
  }
  return { supportedDrivers: DRIVERS_BUILT, reserved };
}

export interface DaemonOptions {
  socket: string;
  stateDir: string;
  netnsPrefix: string;
  logLevel: string;
  /** upstream resolvers for names the embedded DNS does not know */
  dns?: string[];
  /** a fixed busy-poll window after traffic (ms); 0 = never poll; undefined = adaptive */
  busyPollMs?: number;
  /** super-frames (TSO, checksum offload) on TAPs and parents (default true); a network may turn them off */
  offload?: boolean;
  uplink?: string;
  /** etcd://HOST:PORT: overlay networks shared with the other daemons */
  cluster?: string;
  /** this host's underlay address (its VTEP) */
  advertise?: string;
  /** lease TTL of this daemon's cluster records (s) */
  clusterTtl?: number;
}

export class Daemon {
  readonly state: State;
  readonly runtime: Runtime;
  private server: http.Server | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stateFile: string;
  /** attachments (usernet attach), kept in attachments.json beside state.json */
  readonly attachments: AttachmentStore;
  /** container addresses by network, for the DHCP servers; rebuilt when the container list changes */
  private ctrIps: { of: readonly Container[]; byNet: Map<string, Set<number>> } | null = null;
  /** the embedded DNS: names of every user-defined network, refreshed on each state change */
  readonly dns: EmbeddedDns;
  /** the overlay driver (cluster control plane + VTEPs); set by start() */
  overlay: OverlayControl | null = null;

  constructor(
    readonly opts: DaemonOptions,
    readonly log: Logger,
  ) {
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    this.stateFile = join(opts.stateDir, 'state.json');
    const stateOpts = stateOptions(opts);
    this.state = existsSync(this.stateFile) ? State.fromJSON(JSON.parse(readFileSync(this.stateFile, 'utf8')), stateOpts) : new State(stateOpts);
    this.runtime = new Runtime(log);
    this.runtime.offload = opts.offload !== false;
    this.runtime.netnsLedger = new NetnsLedger(
      join(opts.stateDir, 'netns.json'),
      this.state.containers().flatMap((c) => (c.networkMode === 'default' ? [this.netnsName(c)!] : [])),
    );
    // --busy-poll MS: a fixed polling window; 0: never poll; unset: adaptive (engine.ts)
    if (opts.busyPollMs === 0) this.runtime.engine.adaptivePoll = false;
    else this.runtime.engine.busyPollMs = opts.busyPollMs ?? 0;
    this.dns = new EmbeddedDns(this.state, opts.dns ?? [], log);
    this.attachments = new AttachmentStore(join(opts.stateDir, 'attachments.json'), this.state, this.runtime, log);
    // DHCP leases are taken addresses; attachments keep their network in use
    this.state.extraTaken = (id) => [...this.runtime.dhcpHeld(id), ...(this.overlay?.claimedElsewhere(id) ?? [])];
    this.state.extraInUse = (id) => this.attachments.usesNetwork(id);
  }

  /** Whether a container has `ip` on the network (the DHCP servers' view of IPAM). */
  private containerHolds(networkId: string, ip: number): boolean {
    const ctrs = this.state.containers();
    if (this.ctrIps?.of !== ctrs) {
      const byNet = new Map<string, Set<number>>();
      for (const c of ctrs)
        for (const e of c.endpoints) {
          let set = byNet.get(e.networkId);
          if (!set) byNet.set(e.networkId, (set = new Set()));
          set.add(parseIp(e.ip));
        }
      this.ctrIps = { of: ctrs, byNet };
    }
    return this.ctrIps.byNet.get(networkId)?.has(ip) ?? false;
  }

  /** set by stop(): requests that have not started yet are refused (503), the running one finishes */
  private stopping = false;

  /** Runs mutating operations one at a time; once the daemon is stopping, refuses those not yet started. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => (this.stopping ? Promise.reject(new HttpError(503, SHUTTING_DOWN)) : fn());
    const next = this.queue.then(guarded, guarded);
    this.queue = next.catch(() => undefined);
    return next;
  }

  persist(): void {
    this.dns.refresh();
    writeJsonAtomic(this.stateFile, this.state.toJSON());
    this.attachments.save();
  }

  netnsName(c: Container): string | null {
    if (c.networkMode === 'container') {
      const t = this.state.lookupContainer(c.sharesWith!);
      return t ? this.netnsName(t) : null;
    }
    return c.networkMode === 'host' ? null : this.opts.netnsPrefix + c.name;
  }

  async bringUpNetwork(n: Network): Promise<void> {
    if (n.driver === 'overlay') {
      // a switch and the local gateway as for a bridge (no DHCP: every host would answer), joined to the VTEP
      if (!this.overlay) throw new Error('internal: overlay network before the overlay driver started');
      await this.runtime.addBridge(this.bridgeSpec(n), n.subnet!);
      this.overlay.bringUp(n);
      return;
    }
    if (n.driver === 'macvlan' || n.driver === 'ipvlan') {
      const { iface, vlan } = parseParent(n.options.parent);
      this.runtime.addParentNetwork({ id: n.id, name: n.name, driver: n.driver, mode: networkMode(n), iface, vlan, mtu: networkMtu(n), gatewayIp: parseIp(n.gateway!), offload: networkOffload(n) });
      return;
    }
    if (n.driver !== 'bridge') return;
    await this.runtime.addBridge(
      this.bridgeSpec(n),
      n.subnet!,
      {
        containerHolds: (ip) => this.containerHolds(n.id, ip),
        resolve: (q) => this.dns.resolver.handle(q, { networks: [n.id], internalOnly: n.internal }, 'udp'),
      },
    );
  }

  private bridgeSpec(n: Network) {
    return {
      id: n.id,
      name: n.name,
      gatewayIp: parseIp(n.gateway!),
      gatewayMac: macToNumber(n.gatewayMac),
      prefixLen: networkPrefixLen(n),
      mtu: networkMtu(n),
      internal: n.internal,
      icc: networkIcc(n),
      offload: networkOffload(n),
    };
  }

  /** A published port's target: the container's address on the network it was created on. */
  private publishSpec(c: Container, p: PortBinding) {
    return { proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, targetIp: c.endpoints[0].ip, targetPort: p.containerPort };
  }

  /** The egress route: the first non-internal network in lexical order of name. */
  async routeContainer(c: Container): Promise<void> {
    const ep = outboundEndpoint(c, (id) => this.state.networkById(id));
    if (ep) await this.runtime.setDefaultRoute(c.id, this.state.findNetwork(ep.networkId).gateway!, ep.ifname);
    else await this.runtime.setDefaultRoute(c.id, null);
  }

  async bringUpContainer(c: Container): Promise<void> {
    if (c.networkMode === 'container') return; // lives in its target's namespace: nothing of its own
    await this.overlay?.register(c);
    try {
      await this.runtime.createContainer(c.id, c.name, this.netnsName(c));
    } catch (e) {
      await this.overlay?.unregister(c);
      throw e;
    }
    try {
      for (const ep of c.endpoints) {
        const n = this.state.findNetwork(ep.networkId);
        await this.runtime.plug(c.id, n.id, { ifname: ep.ifname, mac: ep.mac, cidr: `${ep.ip}/${networkPrefixLen(n)}` });
      }
      await this.routeContainer(c);
      const done: PortBinding[] = [];
      try {
        for (const p of c.ports) {
          await this.runtime.publish(this.publishSpec(c, p));
          done.push(p);
        }
      } catch (e) {
        for (const p of done) await this.runtime.unpublish(this.publishSpec(c, p));
        throw e;
      }
      await this.startDns(c);
    } catch (e) {
      await this.stopDns(c);
      await this.runtime.removeContainer(c.id);
      await this.overlay?.unregister(c);
      throw e;
    }
  }

  /** The embedded DNS for a container with a namespace of its own on bridge networks. */
  private async startDns(c: Container): Promise<void> {
    const ns = this.netnsName(c);
    if (ns !== null && c.networkMode === 'default') await this.dns.start(c, ns);
  }

  private async stopDns(c: Container): Promise<void> {
    if (c.networkMode === 'container') return; // the target's resolv.conf is the target's
    await this.dns.stop(c, this.netnsName(c));
  }

  async bringDownContainer(c: Container): Promise<void> {
    await this.stopDns(c);
    for (const p of c.ports) await this.runtime.unpublish(this.publishSpec(c, p)).catch(() => undefined);
    await this.runtime.removeContainer(c.id);
    await this.overlay?.unregister(c);
  }

  async start(): Promise<void> {
    if (this.opts.uplink) this.runtime.setUplink(parseUplink(this.opts.uplink));
    this.overlay = await OverlayControl.start(
      {
        state: this.state,
        runtime: this.runtime,
        log: this.log,
        serial: (fn) => this.serial(fn),
        bringUpNetwork: (n) => this.bringUpNetwork(n),
        persist: () => this.persist(),
      },
      { cluster: this.opts.cluster, advertise: this.opts.advertise, ttlSeconds: this.opts.clusterTtl },
    );
    this.dns.remote = () => this.overlay?.remoteContainers() ?? [];
    await this.runtime.setHostLink();
    for (const n of this.state.networks()) await this.bringUpNetwork(n);
    for (const c of this.state.containers()) {
      try {
        await this.bringUpContainer(c);
        this.log.info({ container: c.name }, 'container restored');
      } catch (e) {
        this.log.error({ container: c.name, err: (e as Error).message }, 'could not restore container');
      }
    }
    this.attachments.restore();
    await this.overlay.reconcile();
    await this.listen();
    this.log.info({ socket: this.opts.socket, pid: process.pid }, 'usernet daemon ready');
  }

  private async listen(): Promise<void> {
    const sock = this.opts.socket;
    mkdirSync(dirname(sock), { recursive: true, mode: 0o755 });
    if (existsSync(sock)) {
      const alive = await new Promise<boolean>((resolve) => {
        const s = net.connect(sock, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (alive) throw new Error(`another usernet daemon is listening on ${sock}`);
      unlinkSync(sock);
    }
    this.server = http.createServer((req, res) => this.serve(req, res));
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(sock, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    chmodSync(sock, 0o600);
  }

  /**
   * Stop: no new connections; the request being carried out finishes and is
   * answered (queued ones are refused with 503), so a client never sees a
   * hang-up for a change that was made; then every device and namespace goes.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    // the socket keeps accepting while the request under way finishes: a client that connects now gets a 503,
    // not a reset connection (closing the listener resets what waits in its backlog, and closing "idle"
    // connections cuts requests not yet read)
    await this.queue.catch(() => undefined);
    if (this.server) {
      const closed = new Promise<void>((resolve) => this.server!.close(() => resolve()));
      this.server.closeIdleConnections();
      // answers of finished requests drain; then open streams (capture) and stragglers are cut
      await Promise.race([closed, new Promise((r) => setTimeout(r, 500))]);
      this.server.closeAllConnections();
    }
    for (const c of this.state.containers()) await this.stopDns(c);
    await this.overlay?.close();
    await this.runtime.shutdown();
    try {
      unlinkSync(this.opts.socket);
    } catch {
      /* already gone */
    }
    this.log.info('usernet daemon stopped; every namespace and TAP it made is removed');
  }

  /** A request's JSON body checked against its schema (an empty body is `{}`). */
  private async body<S extends z.ZodType>(req: http.IncomingMessage, schema: S): Promise<z.output<S>> {
    return parseRequest(schema, (await readJsonBody(req)) ?? {});
  }

  /**
   * Every request goes through here. Nothing it does can take the daemon
   * down: a stream error is logged, and an exception that escapes handle()
   * (a bug) is logged with its stack and answered 500.
   */
  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.on('error', (e) => this.log.debug({ err: e.message }, 'request stream error'));
    res.on('error', (e) => this.log.debug({ err: e.message }, 'response stream error (client gone?)'));
    if (this.stopping) {
      req.resume(); // the body is not wanted; read it so the client's write completes
      res.setHeader('connection', 'close');
      return reply(res, 503, { message: SHUTTING_DOWN });
    }
    this.handle(req, res).catch((e: unknown) => {
      this.log.error({ err: e instanceof Error ? e.stack : String(e), method: req.method, url: req.url?.slice(0, 200) }, 'unexpected error in a request');
      try {
        reply(res, 500, { message: `internal error: ${e instanceof Error ? e.message : String(e)}` });
      } catch {
        res.destroy();
      }
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const { url, parts } = parseTarget(req.url ?? '/');
      checkDeclaredLength(req);
      if (parts[0] === 'capture' && parts.length === 1 && req.method === 'GET') return this.capture(url, req, res);
      if (parts[0] === 'conntrack' && parts.length === 1 && req.method === 'GET') return await serveConntrack(url, res, this.runtime.conntrack, () => this.runtime.engine.clock());
      const out = await this.route(req.method ?? 'GET', parts, url, req);
      reply(res, 200, out);
    } catch (e) {
      const { status, message } = errorAnswer(e);
      if (status >= 500) this.log.error({ err: e instanceof Error ? e.stack : String(e), method: req.method, url: req.url?.slice(0, 200) }, 'internal error in a request');
      reply(res, status, { message });
    }
  }

  /** The API: one line per endpoint; mutating operations run one at a time (serial()). */
  private async route(method: string, p: string[], url: URL, req: http.IncomingMessage): Promise<unknown> {
    const table = () => parseQuery(ListQuery, url).format === 'table';
    const key = p.length > 3 ? '' : `${method} ${p[0] ?? ''}${p.length > 1 ? '/:x' : ''}${p.length > 2 ? '/' + p[2] : ''}`;
    switch (key) {
      case 'GET info':
        return { pid: process.pid, socket: this.opts.socket, netnsPrefix: this.opts.netnsPrefix };
      case 'GET networks':
        return listNetworks(this, table());
      case 'POST networks': {
        const b = await this.body(req, NetworkCreate);
        return this.serial(() => createNetwork(this, b));
      }
      case 'GET networks/:x':
        return inspectNet(this, this.state.findNetwork(p[1]));
      case 'DELETE networks/:x':
        return this.serial(() => removeNetwork(this, p[1]));
      case 'POST networks/:x':
        if (p[1] !== 'prune') break;
        return this.serial(() => pruneNetworks(this));
      case 'POST networks/:x/connect': {
        const b = await this.body(req, NetworkConnect);
        return this.serial(() => connectNetwork(this, p[1], b));
      }
      case 'POST networks/:x/disconnect': {
        const b = await this.body(req, NetworkDisconnect);
        return this.serial(() => disconnectNetwork(this, p[1], b));
      }
      case 'GET containers':
        return listContainers(this, table());
      case 'POST containers': {
        const b = await this.body(req, ContainerCreate);
        return this.serial(() => createContainer(this, b));
      }
      case 'GET containers/:x':
        return inspectCtr(this, this.state.findContainer(p[1]));
      case 'DELETE containers/:x':
        return this.serial(() => removeContainer(this, p[1]));
      case 'POST compose/:x': {
        if (p[1] === 'up') {
          const b = await this.body(req, ComposeUp);
          return this.serial(() => composeUp(this, b.plan));
        }
        if (p[1] === 'down') {
          const b = await this.body(req, ComposeDown);
          return this.serial(() => composeDown(this, b.project, b.plan));
        }
        break;
      }
      case 'GET containers/:x/port':
        return containerPorts(this, p[1]);
      case 'GET attachments':
        return listAttachments(this);
      case 'POST attachments': {
        const b = await this.body(req, AttachmentCreate);
        return this.serial(() => attach(this, b));
      }
      case 'DELETE attachments/:x':
        return this.serial(() => detach(this, p[1]));
      case 'GET stats': {
        const report = this.stats();
        return table() ? { table: statsTable(report) } : report;
      }
    }
    throw new HttpError(404, `no such endpoint: ${method} ${url.pathname.length > 100 ? url.pathname.slice(0, 100) + '…' : url.pathname}`);
  }

  stats(): StatsReport {
    return collectStats(this.state, this.runtime);
  }

  private capture(url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
    serveCapture(parseQuery(CaptureQuery, url), req, res, this.state, this.runtime);
  }
}
