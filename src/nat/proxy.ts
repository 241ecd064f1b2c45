/**
 * UserlandProxy — what docker-proxy does: a published port bound to an
 * address the dataplane cannot answer on (127.0.0.1, or the host's own
 * access to a published port) is served by ordinary sockets in the daemon's
 * network namespace that relay to the container's address.
 *
 * start(spec) listens on spec.hostIp:spec.hostPort (hostPort 0: the kernel
 * picks; see `port`) and relays to spec.targetIp:spec.targetPort:
 * - tcp: one upstream connection per accepted connection, bytes piped both
 *   ways with backpressure. Half-close is carried over (a FIN from one side
 *   ends the other side's writing, the opposite direction keeps flowing); an
 *   error on one side resets the other (RST, not a polite FIN: the peer must
 *   not take a cut stream for a complete one); a refused or failing
 *   upstream connect resets the client.
 * - udp: per client address (ip, port) one connected UDP socket to the
 *   target; datagrams from the client go out on it, replies come back to
 *   that client from the listening socket. A flow is closed after
 *   `udpIdleMs` (default 60 s) without traffic in either direction; at most
 *   `maxUdpFlows` (default 4096) at once, datagrams from further clients are
 *   dropped (counted in `stats.udpDropped`).
 * A port that is already in use makes start() reject with
 * "Bind for 127.0.0.1:8080 failed: port is already allocated" (Docker's
 * words; other bind failures: "… failed: <reason>"; .code is the errno name).
 * stop() closes the listener, resets every relayed connection (both sides)
 * and closes every UDP flow.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';

export interface ProxySpec {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  targetIp: string;
  targetPort: number;
}

export interface ProxyOptions {
  /** close a UDP flow after this long without a datagram either way (default 60 000 ms) */
  udpIdleMs?: number;
  /** most UDP flows (client addresses) at once (default 4096) */
  maxUdpFlows?: number;
}

type ProxyLog = Pick<Logger, 'debug' | 'warn'>;

interface UdpFlow {
  upstream: dgram.Socket;
  timer: NodeJS.Timeout;
  connected: boolean;
  /** datagrams that arrived before the upstream socket was connected */
  pending: Buffer[];
}

/** 127.0.0.1:80, [::1]:80 */
function hostPort(ip: string, port: number): string {
  return net.isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function bindError(ip: string, port: number, e: NodeJS.ErrnoException): Error {
  const reasons: Record<string, string> = {
    EADDRINUSE: 'port is already allocated',
    EACCES: 'permission denied',
    EADDRNOTAVAIL: 'cannot assign requested address',
  };
  const reason = (e.code && reasons[e.code]) ?? e.message;
  return Object.assign(new Error(`Bind for ${hostPort(ip, port)} failed: ${reason}`), { code: e.code });
}

/** Abort with an RST (a connecting socket: once connected); plain destroy when that is not possible. */
function resetSocket(s: net.Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

export class UserlandProxy {
  private spec: ProxySpec | null = null;
  private server: net.Server | null = null;
  private udp: dgram.Socket | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly flows = new Map<string, UdpFlow>();
  private readonly udpIdleMs: number;
  private readonly maxUdpFlows: number;
  private boundPort = 0;
  private stopped = false;
  readonly stats = { tcpConnections: 0, tcpErrors: 0, udpFlows: 0, udpDropped: 0 };

  constructor(
    private readonly log?: ProxyLog,
    opts: ProxyOptions = {},
  ) {
    this.udpIdleMs = opts.udpIdleMs ?? 60_000;
    this.maxUdpFlows = opts.maxUdpFlows ?? 4096;
  }

  /** The port listened on (the kernel's choice when spec.hostPort was 0); 0 before start(). */
  get port(): number {
    return this.boundPort;
  }

  /** Live relayed TCP sockets (both sides counted) and UDP flows. */
  get active(): { tcpSockets: number; udpFlows: number } {
    return { tcpSockets: this.sockets.size, udpFlows: this.flows.size };
  }

  async start(spec: ProxySpec): Promise<void> {
    if (this.spec) throw new Error('UserlandProxy: already started');
    if (spec.proto !== 'tcp' && spec.proto !== 'udp') throw new Error(`UserlandProxy: unknown protocol ${String(spec.proto)}`);
    this.spec = { ...spec };
    try {
      if (spec.proto === 'tcp') await this.startTcp(spec);
      else await this.startUdp(spec);
    } catch (e) {
      this.spec = null;
      throw e;
    }
    this.log?.debug({ proto: spec.proto, host: hostPort(spec.hostIp, this.boundPort), target: hostPort(spec.targetIp, spec.targetPort) }, 'userland proxy listening');
  }

  async stop(): Promise<void> {
    if (this.stopped || !this.spec) return;
    this.stopped = true;
    const server = this.server;
    const udp = this.udp;
    this.server = null;
    this.udp = null;
    // Reset, not FIN: whatever was in flight is lost, and a half-open peer
    // must not wait for more.
    for (const s of this.sockets) resetSocket(s);
    this.sockets.clear();
    for (const key of [...this.flows.keys()]) this.closeFlow(key);
    const waits: Array<Promise<void>> = [];
    if (server) waits.push(new Promise((resolve) => server.close(() => resolve())));
    if (udp) waits.push(new Promise((resolve) => udp.close(() => resolve())));
    await Promise.all(waits);
  }

  // ---------------------------------------------------------------- TCP

  private async startTcp(spec: ProxySpec): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => reject(bindError(spec.hostIp, spec.hostPort, e));
      server.once('error', onError);
      server.listen({ host: spec.hostIp, port: spec.hostPort, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (e) => this.log?.warn({ err: e }, 'userland proxy: listener error'));
    server.on('connection', (client) => this.relay(client, spec));
    this.server = server;
    this.boundPort = (server.address() as net.AddressInfo).port;
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  private relay(client: net.Socket, spec: ProxySpec): void {
    if (this.stopped) {
      client.destroy();
      return;
    }
    this.stats.tcpConnections++;
    const upstream = net.connect({ host: spec.targetIp, port: spec.targetPort, allowHalfOpen: true });
    this.track(client);
    this.track(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let failed = false;
    // An error on either side aborts the relay: the other side gets a reset.
    const abort = (side: string, other: net.Socket) => (e: NodeJS.ErrnoException) => {
      if (!failed) {
        failed = true;
        this.stats.tcpErrors++;
        this.log?.debug({ side, code: e.code, client: `${client.remoteAddress}:${client.remotePort}` }, 'userland proxy: connection aborted');
      }
      resetSocket(other);
    };
    client.on('error', abort('client', upstream));
    upstream.on('error', abort('target', client));
    // pipe() ends the destination when the source ends: a FIN carried over,
    // the other direction untouched (allowHalfOpen on both sockets). Each
    // socket closes once both of its directions are done.
    client.pipe(upstream);
    upstream.pipe(client);
  }

  // ---------------------------------------------------------------- UDP

  private async startUdp(spec: ProxySpec): Promise<void> {
    const sock = dgram.createSocket({ type: net.isIPv6(spec.hostIp) ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        sock.close();
        reject(bindError(spec.hostIp, spec.hostPort, e));
      };
      sock.once('error', onError);
      sock.bind({ address: spec.hostIp, port: spec.hostPort, exclusive: true }, () => {
        sock.off('error', onError);
        resolve();
      });
    });
    sock.on('error', (e) => this.log?.warn({ err: e }, 'userland proxy: udp listener error'));
    sock.on('message', (msg, rinfo) => this.fromClient(msg, rinfo, spec));
    this.udp = sock;
    this.boundPort = sock.address().port;
  }

  private fromClient(msg: Buffer, rinfo: dgram.RemoteInfo, spec: ProxySpec): void {
    const key = hostPort(rinfo.address, rinfo.port);
    let flow = this.flows.get(key);
    if (!flow) {
      if (this.flows.size >= this.maxUdpFlows) {
        this.stats.udpDropped++;
        return;
      }
      flow = this.openFlow(key, rinfo, spec);
    }
    flow.timer.refresh();
    if (flow.connected) flow.upstream.send(msg);
    else if (flow.pending.length < 64) flow.pending.push(msg);
    else this.stats.udpDropped++;
  }

  private openFlow(key: string, client: dgram.RemoteInfo, spec: ProxySpec): UdpFlow {
    const upstream = dgram.createSocket(net.isIPv6(spec.targetIp) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => this.closeFlow(key), this.udpIdleMs);
    timer.unref();
    const flow: UdpFlow = { upstream, timer, connected: false, pending: [] };
    this.flows.set(key, flow);
    this.stats.udpFlows++;
    upstream.on('message', (reply) => {
      flow.timer.refresh();
      this.udp?.send(reply, client.port, client.address);
    });
    upstream.on('error', (e: NodeJS.ErrnoException) => {
      // ECONNREFUSED: an ICMP port unreachable for an earlier datagram (the
      // target is not listening yet); the flow stays, as a NAT entry would.
      if (e.code === 'ECONNREFUSED') return;
      this.log?.debug({ client: key, code: e.code }, 'userland proxy: udp flow error');
      this.closeFlow(key);
    });
    upstream.connect(spec.targetPort, spec.targetIp, () => {
      if (this.flows.get(key) !== flow) return;
      flow.connected = true;
      for (const m of flow.pending) upstream.send(m);
      flow.pending.length = 0;
    });
    return flow;
  }

  private closeFlow(key: string): void {
    const flow = this.flows.get(key);
    if (!flow) return;
    this.flows.delete(key);
    clearTimeout(flow.timer);
    try {
      flow.upstream.close();
    } catch {
      /* already closed */
    }
  }
}
