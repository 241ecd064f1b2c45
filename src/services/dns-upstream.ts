/**
 * Embedded DNS, upstream side: forwards the queries the name table cannot
 * answer to the configured resolvers and keeps a bounded cache of their
 * replies. Used by DnsResolver (dns.ts); no sockets outlive one exchange.
 *
 * - Forwarding: the client's query bytes are sent unchanged except for the id,
 *   which is replaced by a fresh random one per attempt (so a reply has to
 *   match an id the client never chose), over UDP from a new socket with an
 *   ephemeral port connected to the upstream, or over TCP (two-byte length
 *   framing) when the client asked over TCP. A UDP reply with TC set is
 *   fetched again over TCP from the same upstream (if that fails the TC reply
 *   is relayed, and the client retries over TCP itself). A reply counts only
 *   if it has QR set, our id and the same question (name compared without
 *   case); other datagrams on the socket are ignored.
 * - Failover: upstreams are tried in the order given; timeout, socket error,
 *   SERVFAIL or REFUSED moves on to the next one (as Docker's resolver does).
 *   When every upstream failed, `exchange` returns null and the resolver
 *   answers SERVFAIL. The original id is written back into the reply.
 * - Bound on concurrency: at most `maxInflight` forwards at once (default
 *   1024, Docker's limit); beyond that, null (SERVFAIL), counted in
 *   inflightFull. Each tenant (the asker's network, given by the caller)
 *   may hold at most `maxInflightPerTenant` of them (default a quarter):
 *   one network flooding names that time out upstream cannot take every
 *   slot from the others (null, counted in tenantInflightFull).
 * - Cache: NOERROR and NXDOMAIN replies without TC, keyed by lower-cased name,
 *   type, class and the DO/CD bits. An entry lives for the smallest TTL of the
 *   answer and authority records (capped at `maxCacheTtl`, default 3600 s); a
 *   negative reply (no answers) lives for its SOA's min(TTL, MINIMUM)
 *   (RFC 2308) and is not cached without a SOA; TTL 0 is not cached. Stored as
 *   the raw reply; a hit is a copy with the client's id and question bytes
 *   (so the client's letter case comes back) and every TTL lowered by the
 *   entry's age. Bounded by `cacheSize` entries (a Map: V8 hashes strings
 *   with a per-process random seed); when full, expired entries are swept (at
 *   most once a second) and if it is still full the new reply is not cached
 *   and cacheFull is counted. cacheSize 0 disables the cache. Time comes from
 *   the injected `now`.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { isIPv4, isIPv6 } from 'node:net';
import { randomInt } from 'node:crypto';

export interface Upstream {
  readonly host: string;
  readonly port: number;
}

/** Counters shared with the resolver (it owns the object). */
export interface UpstreamCounters {
  /** Queries that went to the forwarder (cache hits included). */
  forwarded: number;
  cacheHits: number;
  /** Attempts that got no valid reply in time. */
  upstreamTimeouts: number;
  /** Attempts that failed otherwise (socket error, SERVFAIL, REFUSED, bad TCP reply). */
  upstreamErrors: number;
  /** UDP replies with TC fetched again over TCP. */
  tcpRetries: number;
  cacheFull: number;
  inflightFull: number;
  /** Forwards refused because the asker's network held its share of the slots. */
  tenantInflightFull: number;
}

export interface ForwarderOptions {
  /** Per attempt (one upstream, one transport), ms; default 2000. */
  timeoutMs?: number;
  /** Entries; default 1024; 0 disables. */
  cacheSize?: number;
  /** Seconds; default 3600. */
  maxCacheTtl?: number;
  maxInflight?: number;
  /** Forwards one tenant (network) may have in flight; default maxInflight / 4. */
  maxInflightPerTenant?: number;
  /** A float in [0, 1) (like Math.random); default crypto-random. */
  rng?: () => number;
  /** Milliseconds; default Date.now. */
  now?: () => number;
}

/** "IP", "IPv4:PORT" or "[IPv6]:PORT"; port 53 by default. */
export function parseUpstream(s: string): Upstream {
  const bad = (): Error => new Error(`invalid DNS server "${s}": expected IP, IP:PORT or [IPv6]:PORT`);
  let host = s;
  let port = 53;
  const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(s) ?? /^([0-9.]+):([0-9]{1,5})$/.exec(s);
  if (m) {
    host = m[1]!;
    port = Number(m[2]);
  }
  if (!isIPv4(host) && !isIPv6(host)) throw bad();
  if (port < 1 || port > 65535) throw bad();
  return { host, port };
}

class UpstreamFailure extends Error {
  constructor(readonly timeout: boolean, msg: string) {
    super(msg);
  }
}

const QR = 0x8000;
const TC = 0x0200;
const CD = 0x0010;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const RCODE_REFUSED = 5;

/** The runtime pieces of dns-packet that its type declarations leave out. */
interface Decoder {
  decode: ((buf: Buffer, offset?: number) => unknown) & { bytes: number };
}
const wire = dnsPacket as unknown as { name: Decoder; question: Decoder; answer: Decoder };

interface CacheEntry {
  bytes: Buffer;
  /** Offsets of the TTL fields of every record but OPT. */
  ttlAt: number[];
  ttls: number[];
  questionEnd: number;
  stored: number;
  expires: number;
}

export class Forwarder {
  private readonly timeoutMs: number;
  private readonly cacheSize: number;
  private readonly maxCacheTtl: number;
  private readonly maxInflight: number;
  private readonly rng: () => number;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private lastSweep = -Infinity;
  private inflight = 0;
  private readonly maxPerTenant: number;
  /** forwards in flight per tenant (entries removed at 0, so at most maxInflight keys) */
  private readonly tenants = new Map<string, number>();

  constructor(
    readonly upstreams: readonly Upstream[],
    private readonly counters: UpstreamCounters,
    opts: ForwarderOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.cacheSize = opts.cacheSize ?? 1024;
    this.maxCacheTtl = opts.maxCacheTtl ?? 3600;
    this.maxInflight = opts.maxInflight ?? 1024;
    this.maxPerTenant = Math.max(1, opts.maxInflightPerTenant ?? Math.ceil(this.maxInflight / 4));
    this.rng = opts.rng ?? (() => randomU16() / 65536);
    this.now = opts.now ?? Date.now;
  }

  get cacheEntries(): number {
    return this.cache.size;
  }

  /**
   * Resolve `query` (a parsed, valid query with one question) upstream or
   * from the cache. `limit` is the most bytes the client takes (UDP); a
   * cached reply bigger than that is fetched again instead. `dnssecOk`: the
   * query's OPT has DO set (part of the cache key). `tenant`: who asks (a
   * network id), for the per-tenant share of forwards in flight. Returns the
   * reply with the query's id, or null when every upstream failed.
   */
  async exchange(query: Buffer, q: dnsPacket.Question, tcp: boolean, limit: number, dnssecOk = false, tenant = ''): Promise<Buffer | null> {
    this.counters.forwarded++;
    const key = cacheKey(query, q, dnssecOk);
    const hit = this.fromCache(key, query, limit);
    if (hit) {
      this.counters.cacheHits++;
      return hit;
    }
    if (this.inflight >= this.maxInflight) {
      this.counters.inflightFull++;
      return null;
    }
    const held = this.tenants.get(tenant) ?? 0;
    if (held >= this.maxPerTenant) {
      this.counters.tenantInflightFull++;
      return null;
    }
    this.inflight++;
    this.tenants.set(tenant, held + 1);
    try {
      for (const up of this.upstreams) {
        const reply = await this.attempt(up, query, q, tcp);
        if (reply === null) continue;
        const rcode = reply.readUInt16BE(2) & 0xf;
        if (rcode === RCODE_SERVFAIL || rcode === RCODE_REFUSED) {
          this.counters.upstreamErrors++;
          continue;
        }
        this.store(key, reply);
        reply.writeUInt16BE(query.readUInt16BE(0), 0);
        return reply;
      }
      return null;
    } finally {
      this.inflight--;
      const left = (this.tenants.get(tenant) ?? 1) - 1;
      if (left > 0) this.tenants.set(tenant, left);
      else this.tenants.delete(tenant);
    }
  }

  private async attempt(up: Upstream, query: Buffer, q: dnsPacket.Question, tcp: boolean): Promise<Buffer | null> {
    try {
      if (tcp) return await this.once(up, query, q, true);
      const reply = await this.once(up, query, q, false);
      if ((reply.readUInt16BE(2) & TC) === 0) return reply;
      this.counters.tcpRetries++;
      try {
        return await this.once(up, query, q, true);
      } catch (e) {
        this.count(e);
        return reply;
      }
    } catch (e) {
      this.count(e);
      return null;
    }
  }

  private count(e: unknown): void {
    if (e instanceof UpstreamFailure && e.timeout) this.counters.upstreamTimeouts++;
    else this.counters.upstreamErrors++;
  }

  private once(up: Upstream, query: Buffer, q: dnsPacket.Question, tcp: boolean): Promise<Buffer> {
    const id = Math.floor(this.rng() * 65536) & 0xffff;
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    const valid = (b: Buffer): boolean => isReplyTo(b, id, q);
    return tcp ? tcpExchange(up, out, this.timeoutMs, valid) : udpExchange(up, out, this.timeoutMs, valid);
  }

  // ------------------------------------------------------------- cache

  private fromCache(key: string, query: Buffer, limit: number): Buffer | null {
    if (this.cacheSize === 0) return null;
    const e = this.cache.get(key);
    if (!e) return null;
    const now = this.now();
    if (now >= e.expires) {
      this.cache.delete(key);
      return null;
    }
    if (e.bytes.length > limit) return null;
    const out = Buffer.from(e.bytes);
    out.writeUInt16BE(query.readUInt16BE(0), 0);
    // Same name, other letter case: the question sections have the same length.
    if (query.length >= e.questionEnd) query.copy(out, 12, 12, e.questionEnd);
    const age = Math.floor((now - e.stored) / 1000);
    for (let i = 0; i < e.ttlAt.length; i++) out.writeUInt32BE(Math.max(0, e.ttls[i]! - age), e.ttlAt[i]!);
    return out;
  }

  private store(key: string, reply: Buffer): void {
    if (this.cacheSize === 0) return;
    const flags = reply.readUInt16BE(2);
    const rcode = flags & 0xf;
    if ((flags & TC) !== 0 || (rcode !== 0 && rcode !== RCODE_NXDOMAIN)) return;
    const parsed = parseForCache(reply);
    if (!parsed || parsed.ttl <= 0) return;
    if (!this.cache.has(key) && this.cache.size >= this.cacheSize) {
      this.sweep();
      if (this.cache.size >= this.cacheSize) {
        this.counters.cacheFull++;
        return;
      }
    }
    const now = this.now();
    const ttl = Math.min(parsed.ttl, this.maxCacheTtl);
    this.cache.set(key, { bytes: Buffer.from(reply), ttlAt: parsed.ttlAt, ttls: parsed.ttls, questionEnd: parsed.questionEnd, stored: now, expires: now + ttl * 1000 });
  }

  private sweep(): void {
    const now = this.now();
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [k, e] of this.cache) if (now >= e.expires) this.cache.delete(k);
  }
}

function cacheKey(query: Buffer, q: dnsPacket.Question, dnssecOk: boolean): string {
  const cd = query.readUInt16BE(2) & CD ? 1 : 0;
  return `${q.name.toLowerCase()}\0${q.type}\0${q.class ?? 'IN'}\0${dnssecOk ? 1 : 0}${cd}`;
}

/** TTL offsets and the cache lifetime of a reply; null when not cacheable. */
function parseForCache(reply: Buffer): { ttlAt: number[]; ttls: number[]; ttl: number; questionEnd: number } | null {
  try {
    const p = dnsPacket.decode(reply);
    let off = 12;
    for (let i = 0; i < (p.questions?.length ?? 0); i++) {
      wire.question.decode(reply, off);
      off += wire.question.decode.bytes;
    }
    const questionEnd = off;
    const ttlAt: number[] = [];
    const ttls: number[] = [];
    const records = (p.answers?.length ?? 0) + (p.authorities?.length ?? 0) + (p.additionals?.length ?? 0);
    for (let i = 0; i < records; i++) {
      wire.name.decode(reply, off);
      const typeAt = off + wire.name.decode.bytes;
      wire.answer.decode(reply, off);
      off += wire.answer.decode.bytes;
      if (reply.readUInt16BE(typeAt) === 41) continue; // OPT: no TTL
      ttlAt.push(typeAt + 4);
      ttls.push(reply.readUInt32BE(typeAt + 4));
    }
    const answers = p.answers ?? [];
    const authorities = p.authorities ?? [];
    let ttl: number;
    if (answers.length > 0) {
      ttl = Infinity;
      for (const r of [...answers, ...authorities]) if (r.type !== 'OPT') ttl = Math.min(ttl, r.ttl ?? 0);
    } else {
      const soa = authorities.find((r) => r.type === 'SOA');
      if (!soa || soa.type !== 'SOA') return null;
      ttl = Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
    }
    return Number.isFinite(ttl) ? { ttlAt, ttls, ttl, questionEnd } : null;
  } catch {
    return null;
  }
}

function isReplyTo(b: Buffer, id: number, q: dnsPacket.Question): boolean {
  if (b.length < 12 || b.readUInt16BE(0) !== id || (b.readUInt16BE(2) & QR) === 0) return false;
  try {
    const p = dnsPacket.decode(b);
    const r = p.questions?.[0];
    return p.questions?.length === 1 && !!r && r.name.toLowerCase() === q.name.toLowerCase() && r.type === q.type && (r.class ?? 'IN') === (q.class ?? 'IN');
  } catch {
    return false;
  }
}

function udpExchange(up: Upstream, query: Buffer, timeoutMs: number, valid: (b: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(isIPv6(up.host) ? 'udp6' : 'udp4');
    let finished = false;
    const finish = (err: Error | null, reply?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new UpstreamFailure(true, `${up.host}:${up.port} timed out`)), timeoutMs);
    sock.on('error', (e) => finish(new UpstreamFailure(false, e.message)));
    sock.on('message', (msg) => {
      if (valid(msg)) finish(null, msg);
    });
    sock.connect(up.port, up.host, () => {
      if (!finished) sock.send(query, (e) => e && finish(new UpstreamFailure(false, e.message)));
    });
  });
}

function tcpExchange(up: Upstream, query: Buffer, timeoutMs: number, valid: (b: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: up.host, port: up.port });
    let finished = false;
    let got = Buffer.alloc(0);
    const finish = (err: Error | null, reply?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new UpstreamFailure(true, `${up.host}:${up.port} (tcp) timed out`)), timeoutMs);
    sock.on('error', (e) => finish(new UpstreamFailure(false, e.message)));
    sock.on('close', () => finish(new UpstreamFailure(false, `${up.host}:${up.port} (tcp) closed before replying`)));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 2) return;
      const need = got.readUInt16BE(0);
      if (got.length < 2 + need) return;
      const msg = got.subarray(2, 2 + need);
      if (valid(msg)) finish(null, Buffer.from(msg));
      else finish(new UpstreamFailure(false, `${up.host}:${up.port} (tcp) sent a reply that does not match the query`));
    });
  });
}

function randomU16(): number {
  return randomInt(0, 65536);
}
