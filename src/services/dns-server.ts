/**
 * ContainerDns — the embedded DNS server's sockets for one container: UDP and
 * TCP on 127.0.0.11:53 (or another address and port) INSIDE the container's
 * network namespace, answered by the shared DnsResolver (dns.ts) in the
 * daemon. The sockets are made in the namespace by the native addon
 * (openSocketIn: a helper thread joins the namespace just to create them;
 * the daemon never changes namespace) and adopted by Node's dgram / net, so
 * the container reaches them over its own loopback while the code runs here.
 * Accepted TCP connections live in the namespace too. Queries the resolver
 * forwards upstream go out from the daemon's own namespace (dns-upstream.ts
 * opens plain sockets), not from the container's.
 *
 * - UDP: every datagram goes to resolver.handle(q, asker(), 'udp') and the
 *   reply (null: nothing) goes back to the sender from the listening socket.
 *   `asker` is called per query, so connects/disconnects show at once.
 * - TCP (RFC 7766): two-byte length framing, any number of queries per
 *   connection, pipelined: up to `maxTcpInflight` (default 16) per
 *   connection are resolved at once and replies go out as they complete
 *   (possibly out of order, matched by id as the RFC allows); beyond that,
 *   or while more than 64 KiB of replies wait to be written, the connection
 *   is not read. A connection idle for `tcpIdleMs` (default 10 s; nothing
 *   received or sent, nothing in flight) is closed. A client half-close
 *   (FIN after its queries) still gets every reply, then our FIN. At most
 *   `maxTcpConnections` (default 64) at once: further ones are closed as
 *   soon as they are accepted (counted in tcpRejected). A zero-length or
 *   malformed message gets what the resolver says (usually nothing); the
 *   connection stays.
 * - start(netns, { ip, port }) rejects with the addon's errno-shaped error
 *   (ENOENT: no such namespace, EADDRNOTAVAIL: the namespace's lo is down or
 *   the address is not there, EADDRINUSE) and leaves nothing open. A second
 *   start without stop rejects.
 * - stop() closes both sockets and destroys every TCP connection; replies
 *   still being resolved are dropped (a start() still under way rejects and
 *   leaves nothing open). start may be called again afterwards.
 *
 * resolv.conf: `ip netns exec NAME` bind-mounts every file of
 * /etc/netns/NAME/ over the same name in /etc for the command it runs, so
 * writeResolvConf(NAME, lines) is how processes started that way in the
 * container see `nameserver 127.0.0.11` (processes already running keep the
 * file they had). The file is replaced atomically (write + rename).
 *
 * Counters (`stats`): udpQueries, tcpQueries, replies, noReply (the resolver
 * returned null), sendErrors, tcpConnections (accepted, total), tcpRejected,
 * tcpIdleClosed.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdir, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type NativeAddon, loadNative } from '../io/native.js';
import type { DnsAsker, DnsResolver } from './dns.js';

/** Docker's embedded resolver address. */
export const CONTAINER_DNS_IP = '127.0.0.11';
export const DNS_PORT = 53;
/** Where `ip netns exec` looks for per-namespace /etc files. */
export const NETNS_ETC = '/etc/netns';

type DnsLog = Pick<Logger, 'debug' | 'warn'>;

export interface ContainerDnsOptions {
  /** Close a TCP connection after this long without traffic and with nothing in flight; ms, default 10 000. */
  tcpIdleMs?: number;
  /** Most TCP connections at once; default 64. */
  maxTcpConnections?: number;
  /** Queries resolved at once per TCP connection before it is no longer read; default 16. */
  maxTcpInflight?: number;
  /** The addon (default: loadNative()). */
  native?: NativeAddon;
}

export interface ListenAddress {
  /** Default 127.0.0.11. */
  ip?: string;
  /** Default 53; 0 lets the kernel pick (then `address` tells). */
  port?: number;
}

export interface ContainerDnsStats {
  udpQueries: number;
  tcpQueries: number;
  replies: number;
  noReply: number;
  sendErrors: number;
  tcpConnections: number;
  tcpRejected: number;
  tcpIdleClosed: number;
}

/** Replies waiting in a connection's write buffer beyond which it is no longer read. */
const TCP_WRITE_HIGH = 64 * 1024;

interface TcpConn {
  readonly sock: net.Socket;
  /** Bytes received and not yet cut into messages. */
  pending: Buffer;
  inflight: number;
  /** The client sent FIN. */
  ended: boolean;
  paused: boolean;
}

export class ContainerDns {
  readonly stats: ContainerDnsStats = {
    udpQueries: 0,
    tcpQueries: 0,
    replies: 0,
    noReply: 0,
    sendErrors: 0,
    tcpConnections: 0,
    tcpRejected: 0,
    tcpIdleClosed: 0,
  };
  private readonly idleMs: number;
  private readonly maxConns: number;
  private readonly maxInflight: number;
  private readonly native: NativeAddon | undefined;
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly conns = new Set<TcpConn>();
  private starting = false;
  /** stop() was called while start() was still opening. */
  private cancelStart = false;
  private where = '';

  constructor(
    private readonly resolver: DnsResolver,
    private readonly asker: () => DnsAsker,
    private readonly log?: DnsLog,
    opts: ContainerDnsOptions = {},
  ) {
    this.idleMs = opts.tcpIdleMs ?? 10_000;
    this.maxConns = opts.maxTcpConnections ?? 64;
    this.maxInflight = Math.max(1, opts.maxTcpInflight ?? 16);
    this.native = opts.native;
  }

  /** True between a successful start and stop. */
  get running(): boolean {
    return this.udp !== null;
  }

  /** The UDP socket's address while running (the TCP listener has the same). */
  get address(): { ip: string; port: number } | null {
    if (!this.udp) return null;
    const a = this.udp.address();
    return { ip: a.address, port: a.port };
  }

  /**
   * Listen on ip:port (default 127.0.0.11:53) UDP and TCP inside the network
   * namespace `netns` (an `ip netns` name or a path such as /proc/PID/ns/net).
   */
  async start(netns: string, listen: ListenAddress = {}): Promise<void> {
    if (this.udp || this.starting) throw new Error(`DNS server already running (${this.starting ? 'starting' : this.where})`);
    const ip = listen.ip ?? CONTAINER_DNS_IP;
    const port = listen.port ?? DNS_PORT;
    const native = this.native ?? loadNative();
    this.starting = true;
    this.cancelStart = false;
    let udpFd = -1;
    let tcpFd = -1;
    let udp: dgram.Socket | null = null;
    let tcp: net.Server | null = null;
    try {
      udpFd = native.openSocketIn(netns, 'udp', ip, port);
      udp = dgram.createSocket('udp4');
      const dsock = udp;
      dsock.on('error', (e) => this.log?.warn({ err: e, netns }, 'dns: udp socket error'));
      dsock.on('message', (msg, rinfo) => void this.onDatagram(dsock, msg, rinfo));
      dsock.bind({ fd: udpFd }); // throws synchronously on a bad fd; emits 'listening' inside
      udpFd = -1; // Node owns it now
      // Port 0: TCP takes the port the kernel gave UDP (EADDRINUSE if that one is taken for TCP).
      tcpFd = native.openSocketIn(netns, 'tcp', ip, dsock.address().port);

      tcp = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => this.onConnection(sock));
      tcp.maxConnections = this.maxConns;
      tcp.on('drop', () => this.stats.tcpRejected++);
      const server = tcp;
      const fd = tcpFd;
      tcpFd = -1; // Node owns it from listen() on (it closes the handle itself if listen fails)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd, backlog: 128 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      if (this.cancelStart) throw new Error(`DNS server in ${netns}: stopped while starting`);
      tcp.on('error', (e) => this.log?.warn({ err: e, netns }, 'dns: tcp listener error'));

      this.udp = udp;
      this.tcp = tcp;
      this.where = `${ip}:${udp.address().port} in ${netns}`;
      this.log?.debug({ netns, ip, port: udp.address().port }, 'dns: listening');
    } catch (e) {
      if (udp) udp.close();
      if (tcp) tcp.close();
      // fds not yet handed to Node
      for (const fd of [udpFd, tcpFd]) if (fd >= 0) closeQuietly(native, fd);
      throw e;
    } finally {
      this.starting = false;
    }
  }

  async stop(): Promise<void> {
    if (this.starting) this.cancelStart = true;
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = null;
    this.tcp = null;
    for (const c of this.conns) c.sock.destroy();
    this.conns.clear();
    const waits: Promise<void>[] = [];
    if (udp) waits.push(new Promise((resolve) => udp.close(() => resolve())));
    if (tcp) waits.push(new Promise((resolve) => tcp.close(() => resolve())));
    await Promise.all(waits);
    if (udp) this.log?.debug({ where: this.where }, 'dns: stopped');
  }

  // ------------------------------------------------------------------ UDP

  private async onDatagram(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    this.stats.udpQueries++;
    const reply = await this.resolve(msg, 'udp');
    if (reply === null || this.udp !== sock) return; // stopped meanwhile
    sock.send(reply, rinfo.port, rinfo.address, (err) => {
      if (err) {
        this.stats.sendErrors++;
        this.log?.debug({ err, to: `${rinfo.address}:${rinfo.port}` }, 'dns: udp send failed');
      }
    });
  }

  private async resolve(query: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | null> {
    let asker: DnsAsker;
    try {
      asker = this.asker();
    } catch (e) {
      this.log?.warn({ err: e, where: this.where }, 'dns: asker() threw; query dropped');
      this.stats.noReply++;
      return null;
    }
    const reply = await this.resolver.handle(query, asker, transport);
    if (reply === null) this.stats.noReply++;
    else this.stats.replies++;
    return reply;
  }

  // ------------------------------------------------------------------ TCP

  private onConnection(sock: net.Socket): void {
    if (!this.tcp) {
      sock.destroy();
      return;
    }
    this.stats.tcpConnections++;
    const c: TcpConn = { sock, pending: Buffer.alloc(0), inflight: 0, ended: false, paused: false };
    this.conns.add(c);
    sock.setTimeout(this.idleMs);
    sock.on('timeout', () => {
      // Node re-arms the timer on the next read or write; a reply still being
      // resolved will be one (or `settled` re-arms it).
      if (c.inflight > 0) return;
      this.stats.tcpIdleClosed++;
      sock.destroy();
    });
    sock.on('data', (chunk: Buffer) => {
      c.pending = c.pending.length === 0 ? chunk : Buffer.concat([c.pending, chunk]);
      this.pump(c);
    });
    sock.on('end', () => {
      c.ended = true;
      this.maybeFinish(c);
    });
    sock.on('drain', () => this.pump(c));
    sock.on('error', (err) => this.log?.debug({ err, where: this.where }, 'dns: tcp connection error'));
    sock.on('close', () => this.conns.delete(c));
  }

  /** Cut complete messages out of c.pending while there is room; pause or resume reading. */
  private pump(c: TcpConn): void {
    while (c.inflight < this.maxInflight && c.pending.length >= 2) {
      const n = c.pending.readUInt16BE(0);
      if (c.pending.length < 2 + n) break;
      const query = c.pending.subarray(2, 2 + n);
      c.pending = c.pending.subarray(2 + n);
      if (c.pending.length === 0) c.pending = Buffer.alloc(0); // let go of the chunk
      this.stats.tcpQueries++;
      c.inflight++;
      void this.answerTcp(c, query);
    }
    const busy = c.inflight >= this.maxInflight || c.sock.writableLength > TCP_WRITE_HIGH;
    if (busy && !c.paused) {
      c.paused = true;
      c.sock.pause();
    } else if (!busy && c.paused) {
      c.paused = false;
      c.sock.resume();
    }
    this.maybeFinish(c);
  }

  private async answerTcp(c: TcpConn, query: Buffer): Promise<void> {
    const reply = await this.resolve(query, 'tcp');
    c.inflight--;
    if (c.sock.destroyed || !this.conns.has(c)) return;
    if (reply !== null && reply.length <= 0xffff) {
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(reply.length, 0);
      c.sock.write(Buffer.concat([len, reply]));
    }
    if (c.inflight === 0) c.sock.setTimeout(this.idleMs); // re-arm: there may have been nothing to write
    this.pump(c);
  }

  /** After the client's FIN: our FIN once every reply is out. */
  private maybeFinish(c: TcpConn): void {
    if (c.ended && c.inflight === 0 && !c.sock.writableEnded) c.sock.end();
  }
}

function closeQuietly(native: NativeAddon, fd: number): void {
  try {
    native.close(fd);
  } catch {
    // nothing more to do with it
  }
}

function checkNetnsName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`invalid network namespace name "${name}"`);
  }
}

/**
 * Write /etc/netns/<name>/resolv.conf (`ip netns exec <name>` bind-mounts it
 * over /etc/resolv.conf), e.g. ['nameserver 127.0.0.11', 'options ndots:0'].
 */
export async function writeResolvConf(netnsName: string, lines: string[]): Promise<void> {
  checkNetnsName(netnsName);
  const dir = join(NETNS_ETC, netnsName);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, 'resolv.conf');
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, lines.map((l) => `${l}\n`).join(''), { mode: 0o644 });
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** Remove /etc/netns/<name>/resolv.conf and the directory if that leaves it empty; nothing there is fine. */
export async function removeResolvConf(netnsName: string): Promise<void> {
  checkNetnsName(netnsName);
  const dir = join(NETNS_ETC, netnsName);
  await unlink(join(dir, 'resolv.conf')).catch(ignoreCodes('ENOENT'));
  await rmdir(dir).catch(ignoreCodes('ENOENT', 'ENOTEMPTY', 'EEXIST'));
}

function ignoreCodes(...codes: string[]): (e: NodeJS.ErrnoException) => void {
  return (e) => {
    if (!e.code || !codes.includes(e.code)) throw e;
  };
}
