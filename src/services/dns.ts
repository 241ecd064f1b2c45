/**
 * Embedded DNS — the resolver behind 127.0.0.11 in each container (UDP and
 * TCP) and behind each gateway address for DHCP clients. This file is the
 * logic only: the daemon owns the sockets and calls `handle` with one DNS
 * message (for TCP without the two-byte length prefix) and sends back what it
 * returns (null: send nothing). Wire parsing and encoding is dns-packet's.
 *
 * DnsTable (cold; rebuilt whole by `update` on every state change and swapped
 * in): per user-defined network with addressing (never the default bridge,
 * which has no name resolution in Docker), the names each attached container
 * has there, as Docker ≥ 25 lists them in an endpoint's DNSNames: the
 * container name, the endpoint's aliases (Compose service names arrive as
 * aliases), the container's short id and its hostname; each maps to that
 * container's address on that network. Names are lower-cased. Reverse: each
 * address on the network → `<container name>.<network name>`, which is what
 * Docker answers to PTR (one record).
 *
 * DnsResolver.handle(query, asker, transport), asker = the ids of the networks
 * the asking container is on (in its endpoint order) and whether they are all
 * internal; a DHCP client asking the gateway is { networks: [that network] }:
 * - A: the first of the asker's networks (in the order given) that has the
 *   name answers, with the addresses on that network — so only containers
 *   sharing a network are visible, by their address on the shared network
 *   (Docker walks the sandbox's endpoints the same way). Failing that,
 *   `NAME.NETWORK` for a network of the asker is NAME on that network.
 *   Matching ignores case and a trailing dot; answers carry the question's
 *   spelling. Several addresses rotate round-robin, one step per query per
 *   (network, name): deterministic where Docker shuffles. TTL 600, flags
 *   QR RD(copied) RA, not AA, as Docker. Rotation restarts when the table is
 *   rebuilt.
 * - Other types (AAAA, MX, TXT, ANY, …) for a known name: NOERROR, no answers
 *   (the name exists, IPv4 only), never forwarded.
 * - PTR for `d.c.b.a.in-addr.arpa` of an address on one of the asker's
 *   networks: `<container>.<network>`.
 * - Anything else (and class other than IN): forwarded upstream (see
 *   dns-upstream.ts: UDP, TCP for TCP clients and truncated replies, timeout,
 *   failover, cache); SERVFAIL when every upstream failed. No upstream
 *   configured: NXDOMAIN (RA set). An asker on internal networks only is
 *   never forwarded and gets SERVFAIL, as Docker answers when it does not
 *   proxy DNS for a sandbox (the name is not known not to exist; it cannot be
 *   looked up from there). Cached upstream replies are not served to it
 *   either.
 * - Malformed input, as miekg/dns (Docker's DNS library) does: shorter than a
 *   header, or a response (QR set): dropped (null); opcode other than QUERY:
 *   NOTIMP; not exactly one question, or a body dns-packet cannot parse:
 *   FORMERR with the header's id and no sections. Never throws.
 * - UDP size: 512 bytes, or the EDNS payload size the query offers (at most
 *   4096). A local answer that does not fit keeps the records that do and
 *   sets TC; an upstream reply that does not fit becomes header + question
 *   with TC. A query with OPT gets an OPT back.
 *
 * Counters (`counters`): queries, answeredLocal, forwarded, cacheHits, and
 * replies by rcode (nxdomain, servfail, formerr, notimp), dropped, truncated,
 * notForwardedInternal, upstreamTimeouts, upstreamErrors, tcpRetries,
 * cacheFull, inflightFull.
 */
import * as dnsPacket from 'dns-packet';
import { type Container, type Network, hasAddressing, isUserDefined, shortId } from '../control/records.js';
import { Forwarder, type ForwarderOptions, type Upstream, type UpstreamCounters, parseUpstream } from './dns-upstream.js';

export { parseUpstream, type Upstream } from './dns-upstream.js';

/** TTL of the answers from the table (Docker's respTTL). */
export const LOCAL_TTL = 600;
/** EDNS payload size we offer in our OPT, and the most we send over UDP. */
export const MAX_UDP = 4096;

export interface DnsAsker {
  /** Ids of the networks the asker is on, in its endpoint order. */
  readonly networks: readonly string[];
  /** Every one of them is internal: never forward. */
  readonly internalOnly: boolean;
}

export type DnsTransport = 'udp' | 'tcp';

export interface DnsResolverOptions extends ForwarderOptions {
  /** "IP", "IP:PORT" or "[IPv6]:PORT", tried in order. */
  upstreams: readonly string[];
}

export interface DnsCounters extends UpstreamCounters {
  queries: number;
  answeredLocal: number;
  nxdomain: number;
  servfail: number;
  formerr: number;
  notimp: number;
  dropped: number;
  truncated: number;
  notForwardedInternal: number;
}

interface NameEntry {
  readonly ips: string[];
  /** Round-robin position. */
  next: number;
}

interface NetNames {
  /** Network name, lower-cased (for NAME.NETWORK). */
  readonly lname: string;
  readonly names: Map<string, NameEntry>;
  /** Address → PTR target. */
  readonly ptr: Map<string, string>;
}

export class DnsTable {
  private nets = new Map<string, NetNames>();

  /** Rebuild from the daemon's records (all of them) and swap in. */
  update(networks: readonly Network[], containers: readonly Container[]): void {
    const next = new Map<string, NetNames>();
    const netName = new Map<string, string>();
    for (const n of networks) {
      if (!isUserDefined(n) || !hasAddressing(n)) continue;
      next.set(n.id, { lname: n.name.toLowerCase(), names: new Map(), ptr: new Map() });
      netName.set(n.id, n.name);
    }
    for (const c of containers) {
      for (const ep of c.endpoints) {
        const t = next.get(ep.networkId);
        if (!t) continue;
        const names = new Set([c.name, ...ep.aliases, shortId(c.id), c.hostname].filter((s) => s !== '').map((s) => s.toLowerCase()));
        for (const name of names) {
          const e = t.names.get(name);
          if (!e) t.names.set(name, { ips: [ep.ip], next: 0 });
          else if (!e.ips.includes(ep.ip)) e.ips.push(ep.ip);
        }
        t.ptr.set(ep.ip, `${c.name}.${netName.get(ep.networkId)}`);
      }
    }
    this.nets = next;
  }

  /** Lower-case name, no trailing dot. */
  lookup(networkId: string, name: string): NameEntry | undefined {
    return this.nets.get(networkId)?.names.get(name);
  }

  /** NAME.NETWORK where NETWORK is this network's name. */
  lookupQualified(networkId: string, name: string): NameEntry | undefined {
    const t = this.nets.get(networkId);
    if (!t || name.length <= t.lname.length + 1 || !name.endsWith(t.lname) || name[name.length - t.lname.length - 1] !== '.') return undefined;
    return t.names.get(name.slice(0, name.length - t.lname.length - 1));
  }

  ptr(networkId: string, ip: string): string | undefined {
    return this.nets.get(networkId)?.ptr.get(ip);
  }

  /** Names per network id (for status output and tests). */
  names(networkId: string): string[] {
    return [...(this.nets.get(networkId)?.names.keys() ?? [])];
  }
}

const RD = 0x0100;
const CD = 0x0010;
const TC = 0x0200;
const RA = 0x0080;
const QR = 0x8000;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export class DnsResolver {
  readonly counters: DnsCounters = {
    queries: 0,
    answeredLocal: 0,
    forwarded: 0,
    cacheHits: 0,
    nxdomain: 0,
    servfail: 0,
    formerr: 0,
    notimp: 0,
    dropped: 0,
    truncated: 0,
    notForwardedInternal: 0,
    upstreamTimeouts: 0,
    upstreamErrors: 0,
    tcpRetries: 0,
    cacheFull: 0,
    inflightFull: 0,
    tenantInflightFull: 0,
  };
  private readonly forwarder: Forwarder;

  constructor(
    private readonly table: DnsTable,
    opts: DnsResolverOptions,
  ) {
    this.forwarder = new Forwarder(opts.upstreams.map(parseUpstream), this.counters, opts);
  }

  get upstreams(): readonly Upstream[] {
    return this.forwarder.upstreams;
  }

  /** Answer one query; null means send nothing. Never rejects. */
  async handle(query: Buffer, asker: DnsAsker, transport: DnsTransport): Promise<Buffer | null> {
    this.counters.queries++;
    let reply: Buffer | null;
    try {
      reply = await this.answer(query, asker, transport);
    } catch {
      reply = query.length >= 12 ? headerOnly(query, RCODE.SERVFAIL) : null;
    }
    if (reply === null) {
      this.counters.dropped++;
      return null;
    }
    const flags = reply.readUInt16BE(2);
    if (flags & TC) this.counters.truncated++;
    switch (flags & 0xf) {
      case RCODE.NXDOMAIN: this.counters.nxdomain++; break; // prettier-ignore
      case RCODE.SERVFAIL: this.counters.servfail++; break; // prettier-ignore
      case RCODE.FORMERR: this.counters.formerr++; break; // prettier-ignore
      case RCODE.NOTIMP: this.counters.notimp++; break; // prettier-ignore
    }
    return reply;
  }

  private async answer(query: Buffer, asker: DnsAsker, transport: DnsTransport): Promise<Buffer | null> {
    if (query.length < 12 || query.readUInt16BE(2) & QR) return null;
    if (((query.readUInt16BE(2) >> 11) & 0xf) !== 0) return headerOnly(query, RCODE.NOTIMP);
    let pkt: dnsPacket.DecodedPacket;
    try {
      pkt = dnsPacket.decode(query);
    } catch {
      return headerOnly(query, RCODE.FORMERR);
    }
    const q = pkt.questions?.[0];
    if (!q || pkt.questions!.length !== 1) return headerOnly(query, RCODE.FORMERR);
    const opt = pkt.additionals?.find((a) => a.type === 'OPT');
    const limit = transport === 'tcp' ? 65535 : Math.min(MAX_UDP, Math.max(512, opt?.type === 'OPT' ? opt.udpPayloadSize : 0));
    const dnssecOk = opt?.type === 'OPT' && (opt.flags & 0x8000) !== 0;
    const local = (rcode: number, answers: dnsPacket.Answer[] = []): Buffer => this.reply(pkt, rcode, answers, opt !== undefined, limit);

    const name = normalise(q.name);
    if ((q.class ?? 'IN') === 'IN') {
      if (q.type === 'PTR') {
        const ip = reverseIp(name);
        if (ip !== null) {
          for (const id of asker.networks) {
            const target = this.table.ptr(id, ip);
            if (target === undefined) continue;
            this.counters.answeredLocal++;
            return local(RCODE.NOERROR, [{ name: q.name, type: 'PTR', class: 'IN', ttl: LOCAL_TTL, data: target }]);
          }
        }
      }
      const entry = this.find(name, asker.networks);
      if (entry) {
        this.counters.answeredLocal++;
        if (q.type !== 'A') return local(RCODE.NOERROR);
        const n = entry.ips.length;
        const k = entry.next++ % n;
        const answers: dnsPacket.Answer[] = [];
        for (let i = 0; i < n; i++) answers.push({ name: q.name, type: 'A', class: 'IN', ttl: LOCAL_TTL, data: entry.ips[(k + i) % n]! });
        return local(RCODE.NOERROR, answers);
      }
    }

    if (asker.internalOnly) {
      this.counters.notForwardedInternal++;
      return local(RCODE.SERVFAIL);
    }
    if (this.forwarder.upstreams.length === 0) return local(RCODE.NXDOMAIN);
    const relayed = await this.forwarder.exchange(query, q, transport === 'tcp', limit, dnssecOk, asker.networks[0] ?? '');
    if (relayed === null) return local(RCODE.SERVFAIL);
    if (relayed.length <= limit) return relayed;
    // Too big for this client over UDP (fetched over TCP, or cached): header + question, TC.
    const flags = (relayed.readUInt16BE(2) & 0x7fff) | TC;
    return dnsPacket.encode({ id: pkt.id, type: 'response', flags, questions: [q], answers: [], authorities: [], additionals: [] });
  }

  private find(name: string, networks: readonly string[]): NameEntry | undefined {
    for (const id of networks) {
      const e = this.table.lookup(id, name);
      if (e) return e;
    }
    if (!name.includes('.')) return undefined;
    for (const id of networks) {
      const e = this.table.lookupQualified(id, name);
      if (e) return e;
    }
    return undefined;
  }

  private reply(pkt: dnsPacket.DecodedPacket, rcode: number, answers: dnsPacket.Answer[], withOpt: boolean, limit: number): Buffer {
    const additionals: dnsPacket.Answer[] = withOpt ? [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
    const out: dnsPacket.Packet = {
      id: pkt.id,
      type: 'response',
      flags: RA | ((pkt.flags ?? 0) & (RD | CD)) | rcode,
      questions: pkt.questions,
      answers,
      authorities: [],
      additionals,
    };
    let buf = dnsPacket.encode(out);
    while (buf.length > limit && answers.length > 0) {
      // Rare (a name shared by dozens of containers over UDP): drop the tail, set TC.
      const keep = Math.max(0, Math.min(answers.length - 1, Math.floor((answers.length * limit) / buf.length)));
      out.answers = answers = answers.slice(0, keep);
      out.flags = (out.flags ?? 0) | TC;
      buf = dnsPacket.encode(out);
    }
    return buf;
  }
}

/** A reply with the query's header (id, opcode, RD, CD), RA and `rcode`, no sections. */
function headerOnly(query: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  const qflags = query.readUInt16BE(2);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(QR | (qflags & (0x7800 | RD | CD)) | RA | rcode, 2);
  return out;
}

/** Lower-case, without the trailing dot. */
function normalise(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** `4.3.2.1.in-addr.arpa` → "1.2.3.4"; null for anything else. */
export function reverseIp(name: string): string | null {
  const m = /^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.in-addr\.arpa$/.exec(name);
  if (!m) return null;
  const octets = [m[4]!, m[3]!, m[2]!, m[1]!];
  if (octets.some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) return null;
  return octets.join('.');
}
