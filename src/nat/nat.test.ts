import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { fromHex, toHex, u16, u32, w16 } from '../wire/bytes.js';
import { checksum, verifyChecksum } from '../wire/checksum.js';
import { FX } from '../wire/fixtures.js';
import { IcmpRepr, IcmpView } from '../wire/icmp.js';
import { Ipv4Repr, Ipv4View, parseIpv4 } from '../wire/ipv4.js';
import { TcpRepr, TcpView } from '../wire/tcp.js';
import { UdpRepr, UdpView, udpChecksum } from '../wire/udp.js';
import { CT_ORIGINAL, CT_REPLY, Conntrack } from './conntrack.js';
import { NatRewriter } from './nat.js';
import { rng } from '../lab/rng.js';

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const A = parseIpv4('172.18.0.2'); // container
const B = parseIpv4('172.18.0.3'); // container with a published port
const GW = parseIpv4('172.18.0.1'); // bridge gateway
const S = parseIpv4('93.184.216.34'); // server out there
const C = parseIpv4('198.51.100.7'); // outside client
const G = parseIpv4('192.168.1.2'); // uplink address
const R = parseIpv4('10.9.8.7'); // a router on the way


interface Pkt {
  src: number;
  dst: number;
  sport?: number;
  dport?: number;
  payload?: Uint8Array;
  flags?: number;
  /** ICMP */
  type?: number;
  code?: number;
  id?: number;
  /** UDP: leave the checksum 0 */
  noUdpCsum?: boolean;
  flagsFrag?: number;
  ttl?: number;
}

/** An IPv4 packet built with the Repr emitters (all checksums correct). */
function ip(proto: number, p: Pkt): Uint8Array {
  const payload = p.payload ?? new Uint8Array(0);
  const l4 = new Uint8Array(60 + payload.length);
  let n: number;
  if (proto === TCP) {
    n = TcpRepr.emit({ srcPort: p.sport!, dstPort: p.dport!, seq: 0x01020304, ack: 0x0a0b0c0d, flags: p.flags ?? 0x18, window: 64240, urgent: 0, options: new Uint8Array(0), payload }, l4, 0, p.src, p.dst); // prettier-ignore
  } else if (proto === UDP) {
    n = UdpRepr.emit({ srcPort: p.sport!, dstPort: p.dport!, payload }, l4, 0, p.noUdpCsum ? undefined : p.src, p.noUdpCsum ? undefined : p.dst); // prettier-ignore
  } else {
    n = IcmpRepr.emit({ type: p.type ?? 8, code: p.code ?? 0, ident: p.id ?? 0, seq: 1, payload }, l4, 0);
  }
  const out = new Uint8Array(20 + n);
  Ipv4Repr.emit({ tos: 0, ident: 0x1234, flagsFrag: p.flagsFrag ?? 0x4000, ttl: p.ttl ?? 64, proto, src: p.src, dst: p.dst, payloadLen: n, options: new Uint8Array(0) }, out, 0); // prettier-ignore
  out.set(l4.subarray(0, n), 20);
  return out;
}

/** Fields of a packet, and every checksum verified by full recomputation. */
function check(b: Uint8Array, off = 0): { src: number; dst: number; sport: number; dport: number } {
  const v = new Ipv4View();
  expect(v.wrap(b, off, b.length - off)).toBe(true);
  expect(v.verifyChecksum()).toBe(true);
  const copy = b.slice(off, off + v.headerLen);
  w16(copy, 10, 0);
  expect(v.checksum).toBe(checksum(copy, 0, v.headerLen)); // exactly what a recomputation gives
  const r = { src: v.src, dst: v.dst, sport: 0, dport: 0 };
  if (v.isFragment && v.fragOffset !== 0) return r;
  if (v.proto === TCP) {
    const t = new TcpView();
    expect(t.wrap(b, v.payloadOff, v.payloadLen)).toBe(true);
    if (!v.isFragment) {
      expect(t.verifyChecksum(v.src, v.dst)).toBe(true);
      const c = b.slice(v.payloadOff, v.payloadOff + v.payloadLen);
      w16(c, 16, 0);
      expect(t.checksum).toBe(checksum(c, 0, c.length, (v.src >>> 16) + (v.src & 0xffff) + (v.dst >>> 16) + (v.dst & 0xffff) + 6 + c.length)); // prettier-ignore
    }
    r.sport = t.srcPort;
    r.dport = t.dstPort;
  } else if (v.proto === UDP) {
    const u = new UdpView();
    expect(u.wrap(b, v.payloadOff, v.payloadLen)).toBe(true);
    expect(u.verifyChecksum(v.src, v.dst)).toBe(true);
    if (u.checksum !== 0) {
      const c = b.slice(v.payloadOff, v.payloadOff + u.length);
      w16(c, 6, 0);
      expect(u.checksum).toBe(udpChecksum(c, 0, c.length, v.src, v.dst));
    }
    r.sport = u.srcPort;
    r.dport = u.dstPort;
  } else if (v.proto === ICMP) {
    const i = new IcmpView();
    expect(i.wrap(b, v.payloadOff, v.payloadLen)).toBe(true);
    expect(i.verifyChecksum()).toBe(true);
    r.sport = r.dport = i.ident;
  }
  return r;
}

function setup(cap = 64) {
  const pool = new FramePool({ capacity: 8 });
  const ct = new Conntrack({ capacity: cap, seed: 77 });
  const nat = new NatRewriter(pool, ct);
  return { pool, ct, nat };
}

describe('NatRewriter.translate', () => {
  it('masquerades TCP out and un-NATs the reply (in a pool frame, after Ethernet)', () => {
    const { pool, ct, nat } = setup();
    const f = ct.create(TCP, A, 40000, S, 80, S, 80, G, 61000, 0);
    // the fixture SYN (tshark-checked checksums), from 172.17.0.2:45678
    const syn = fromHex(FX.tcpSyn);
    const src = parseIpv4('172.17.0.2');
    const g = ct.create(TCP, src, 45678, S, 80, S, 80, G, 1025, 0);
    const h = pool.fromBytes(syn);
    const o = pool.offsets[h];
    expect(ct.lookup(TCP, src, 45678, S, 80)).toBe(g << 1);
    expect(nat.translate(pool.bytes, o + 14, g, CT_ORIGINAL)).toBe(true);
    expect(check(pool.bytes, o + 14)).toEqual({ src: G, dst: S, sport: 1025, dport: 80 });
    expect(toHex(pool.bytes, o, 14)).toBe(toHex(syn, 0, 14)); // Ethernet untouched
    expect(toHex(pool.bytes, o + 14 + 20 + 4, 12)).toBe(toHex(syn, 14 + 20 + 4, 12)); // seq/ack/flags untouched
    pool.free(h);

    const out = ip(TCP, { src: A, dst: S, sport: 40000, dport: 80, payload: new Uint8Array([1, 2, 3]) });
    expect(nat.translate(out, 0, f, CT_ORIGINAL)).toBe(true);
    expect(check(out)).toEqual({ src: G, dst: S, sport: 61000, dport: 80 });
    const back = ip(TCP, { src: S, dst: G, sport: 80, dport: 61000, payload: new Uint8Array([9, 8, 7, 6]) });
    expect(ct.lookup(TCP, S, 80, G, 61000)).toBe((f << 1) | CT_REPLY);
    expect(nat.translate(back, 0, f, CT_REPLY)).toBe(true);
    expect(check(back)).toEqual({ src: S, dst: A, sport: 80, dport: 40000 });
  });

  it('masquerades UDP (checksum 0 stays 0) and ICMP echo (identifier mapped)', () => {
    const { ct, nat } = setup();
    const f = ct.create(UDP, A, 5353, S, 53, S, 53, G, 1024, 0);
    const out = ip(UDP, { src: A, dst: S, sport: 5353, dport: 53, payload: new Uint8Array(13).fill(0xab) });
    expect(nat.translate(out, 0, f, CT_ORIGINAL)).toBe(true);
    expect(check(out)).toEqual({ src: G, dst: S, sport: 1024, dport: 53 });
    const back = ip(UDP, { src: S, dst: G, sport: 53, dport: 1024, payload: new Uint8Array(40).fill(7) });
    expect(nat.translate(back, 0, f, CT_REPLY)).toBe(true);
    expect(check(back)).toEqual({ src: S, dst: A, sport: 53, dport: 5353 });
    const none = ip(UDP, { src: A, dst: S, sport: 5353, dport: 53, payload: new Uint8Array(5), noUdpCsum: true });
    nat.translate(none, 0, f, CT_ORIGINAL);
    expect(u16(none, 26)).toBe(0);
    expect(check(none)).toEqual({ src: G, dst: S, sport: 1024, dport: 53 });

    const e = ct.create(ICMP, A, 0x1c2b, S, 0x1c2b, S, 7, G, 7, 0);
    const req = ip(ICMP, { src: A, dst: S, type: 8, id: 0x1c2b, payload: new Uint8Array(56).fill(0x42) });
    expect(ct.lookup(ICMP, A, 0x1c2b, S, 0x1c2b)).toBe(e << 1);
    expect(nat.translate(req, 0, e, CT_ORIGINAL)).toBe(true);
    expect(check(req)).toEqual({ src: G, dst: S, sport: 7, dport: 7 });
    const rep = ip(ICMP, { src: S, dst: G, type: 0, id: 7, payload: new Uint8Array(56).fill(0x42) });
    expect(ct.lookup(ICMP, S, 7, G, 7)).toBe((e << 1) | 1);
    expect(nat.translate(rep, 0, e, CT_REPLY)).toBe(true);
    expect(check(rep)).toEqual({ src: S, dst: A, sport: 0x1c2b, dport: 0x1c2b });
  });

  it('DNATs a published port and SNATs its reply; hairpin does both on one flow', () => {
    const { ct, nat } = setup();
    // -p 8080:80 → B:80, reached from outside
    const f = ct.create(TCP, C, 33333, G, 8080, B, 80, C, 33333, 0);
    const syn = ip(TCP, { src: C, dst: G, sport: 33333, dport: 8080, flags: 0x02 });
    nat.translate(syn, 0, f, CT_ORIGINAL);
    expect(check(syn)).toEqual({ src: C, dst: B, sport: 33333, dport: 80 });
    const synack = ip(TCP, { src: B, dst: C, sport: 80, dport: 33333, flags: 0x12 });
    nat.translate(synack, 0, f, CT_REPLY);
    expect(check(synack)).toEqual({ src: G, dst: C, sport: 8080, dport: 33333 });
    // hairpin: A reaches G:8080 → B:80, and is masqueraded to the gateway so B answers through us
    const h = ct.create(TCP, A, 45000, G, 8080, B, 80, GW, 45000, 0);
    const p1 = ip(TCP, { src: A, dst: G, sport: 45000, dport: 8080, payload: new Uint8Array(100).fill(1) });
    nat.translate(p1, 0, h, CT_ORIGINAL);
    expect(check(p1)).toEqual({ src: GW, dst: B, sport: 45000, dport: 80 });
    const p2 = ip(TCP, { src: B, dst: GW, sport: 80, dport: 45000, payload: new Uint8Array(7).fill(2) });
    nat.translate(p2, 0, h, CT_REPLY);
    expect(check(p2)).toEqual({ src: G, dst: A, sport: 8080, dport: 45000 });
    // UDP published port
    const u = ct.create(UDP, C, 5000, G, 5353, B, 53, C, 5000, 0);
    const q = ip(UDP, { src: C, dst: G, sport: 5000, dport: 5353, payload: new Uint8Array(30).fill(3) });
    nat.translate(q, 0, u, CT_ORIGINAL);
    expect(check(q)).toEqual({ src: C, dst: B, sport: 5000, dport: 53 });
  });

  it('leaves packets of un-NATed flows alone', () => {
    const { ct, nat } = setup();
    const f = ct.create(TCP, A, 1, B, 2, B, 2, A, 1, 0);
    const p = ip(TCP, { src: A, dst: B, sport: 1, dport: 2 });
    const before = toHex(p);
    expect(nat.translate(p, 0, f, CT_ORIGINAL)).toBe(false);
    expect(toHex(p)).toBe(before);
  });

  it('rewrites only the addresses of a non-first fragment', () => {
    const { ct, nat } = setup();
    const f = ct.create(UDP, A, 5353, S, 53, S, 53, G, 1024, 0);
    const frag = ip(UDP, { src: A, dst: S, sport: 5353, dport: 53, payload: new Uint8Array(16).fill(5), flagsFrag: 0x00b9 });
    const tail = toHex(frag, 20);
    expect(nat.translate(frag, 0, f, CT_ORIGINAL)).toBe(true);
    expect(check(frag)).toMatchObject({ src: G, dst: S });
    expect(toHex(frag, 20)).toBe(tail);
  });

  it('random packets: every checksum equals a full recomputation', () => {
    const r = rng(2024);
    const { ct, nat } = setup(4096);
    const rIp = () => (r() * 0x100000000) >>> 0;
    const rPort = () => Math.floor(r() * 65536);
    for (let k = 0; k < 3000; k++) {
      const proto = [TCP, UDP, ICMP][k % 3];
      const [os, osp, od, odp] = [rIp(), rPort(), rIp(), rPort()];
      const [rs, rsp, rd, rdp] = r() < 0.2 ? [od, odp, os, osp] : [rIp(), rPort(), rIp(), rPort()];
      const pin = proto === ICMP;
      const f = ct.create(proto, os, osp, od, pin ? osp : odp, rs, rsp, rd, pin ? rsp : rdp, 0);
      if (f < 0) continue;
      const dir = r() < 0.5 ? CT_ORIGINAL : CT_REPLY;
      const payload = new Uint8Array(Math.floor(r() * 80));
      for (let i = 0; i < payload.length; i++) payload[i] = r() * 256;
      const t = dir === 0 ? { src: os, sport: osp, dst: od, dport: pin ? osp : odp } : { src: rs, sport: rsp, dst: rd, dport: pin ? rsp : rdp };
      const p = ip(proto, { ...t, id: t.sport, type: dir === 0 ? 8 : 0, payload, noUdpCsum: r() < 0.1, ttl: Math.floor(r() * 256) }); // prettier-ignore
      nat.translate(p, 0, f, dir);
      const x = dir === 0 ? { src: rd, sport: rdp, dst: rs, dport: rsp } : { src: od, sport: pin ? osp : odp, dst: os, dport: osp };
      const got = check(p);
      expect(got.src).toBe(x.src);
      expect(got.dst).toBe(x.dst);
      if (pin) expect(got.sport).toBe(dir === 0 ? rsp : osp);
      else expect([got.sport, got.dport]).toEqual([x.sport, x.dport]);
      ct.remove(f);
    }
  });

  it('checksum corner cases: fields that are or become 0x0000 / 0xffff', () => {
    const { ct, nat } = setup();
    const f = ct.create(TCP, A, 40000, S, 80, S, 80, G, 61000, 0);
    const u = ct.create(UDP, A, 40000, S, 53, S, 53, G, 61000, 0);
    // find a payload word that makes the checksum before (or after) the rewrite 0
    const tune = (proto: number, after: boolean, want: number): Uint8Array => {
      for (let w = 0; w < 0x10000; w++) {
        const p = ip(proto, { src: A, dst: S, sport: 40000, dport: proto === TCP ? 80 : 53, payload: new Uint8Array([w >>> 8, w & 255, 1, 2]) }); // prettier-ignore
        if (after) nat.translate(p, 0, proto === TCP ? f : u, CT_ORIGINAL);
        const c = u16(p, 20 + (proto === TCP ? 16 : 6));
        if (c === want) return ip(proto, { src: A, dst: S, sport: 40000, dport: proto === TCP ? 80 : 53, payload: new Uint8Array([w >>> 8, w & 255, 1, 2]) }); // prettier-ignore
      }
      throw new Error('no such payload');
    };
    for (const [proto, after, want] of [
      [TCP, false, 0x0000], // TCP checksum 0 before
      [TCP, true, 0x0000], // … and after the rewrite
      [UDP, false, 0xffff], // UDP: a computed 0 is sent as 0xffff
      [UDP, true, 0xffff], // … and a rewrite that computes 0 writes 0xffff
    ] as const) {
      const p = tune(proto, after, want);
      nat.translate(p, 0, proto === TCP ? f : u, CT_ORIGINAL);
      check(p);
      if (after) expect(u16(p, 20 + (proto === TCP ? 16 : 6))).toBe(want);
    }
  });
});

/** An ICMP error from `from` to `to` quoting `quoted` (all checksums right). */
function icmpError(from: number, to: number, type: number, code: number, quoted: Uint8Array): Uint8Array {
  return ip(ICMP, { src: from, dst: to, type, code, id: 0, payload: quoted });
}

function checkError(e: Uint8Array): { outer: { src: number; dst: number }; inner: ReturnType<typeof check> } {
  const outer = check(e);
  const quote = e.subarray(28);
  const inner = check(quote); // the whole datagram is quoted: every inner checksum verifiable
  return { outer: { src: outer.src, dst: outer.dst }, inner };
}

describe('NatRewriter ICMP errors', () => {
  it('port unreachable and time exceeded about a masqueraded UDP flow reach the inside host', () => {
    const { ct, nat } = setup();
    const f = ct.create(UDP, A, 5353, S, 53, S, 53, G, 1024, 0);
    const out = ip(UDP, { src: A, dst: S, sport: 5353, dport: 53, payload: new Uint8Array(21).fill(9) });
    nat.translate(out, 0, f, CT_ORIGINAL); // what went out: G:1024 → S:53
    // from the server itself
    const unreach = icmpError(S, G, 3, 3, out);
    const ref = nat.lookupIcmpError(unreach, 0, unreach.length);
    expect(ref).toBe((f << 1) | CT_ORIGINAL);
    expect(nat.translateIcmpError(unreach, 0, unreach.length, ref >> 1, ref & 1)).toBe(true);
    expect(checkError(unreach)).toEqual({ outer: { src: S, dst: A }, inner: { src: A, dst: S, sport: 5353, dport: 53 } });
    expect(unreach[20]).toBe(3);
    expect(unreach[21]).toBe(3);
    // from a router on the way (TTL ran out): the outer source stays the router
    const ttl = icmpError(R, G, 11, 0, out);
    const ref2 = nat.lookupIcmpError(ttl, 0, ttl.length);
    expect(ref2).toBe(ref);
    expect(nat.translateIcmpError(ttl, 0, ttl.length, f, CT_ORIGINAL)).toBe(true);
    expect(checkError(ttl)).toEqual({ outer: { src: R, dst: A }, inner: { src: A, dst: S, sport: 5353, dport: 53 } });
    // with padding after the IP packet (as in a short Ethernet frame)
    const padded = new Uint8Array(icmpError(R, G, 11, 0, out).length + 6);
    padded.set(icmpError(R, G, 11, 0, out));
    expect(nat.translateIcmpError(padded, 0, padded.length, f, CT_ORIGINAL)).toBe(true);
    expect(checkError(padded.subarray(0, padded.length - 6)).outer.dst).toBe(A);
  });

  it('an unreachable from a DNATed container leaves from the published address', () => {
    const { ct, nat } = setup();
    const f = ct.create(UDP, C, 5000, G, 5353, B, 53, C, 5000, 0);
    const q = ip(UDP, { src: C, dst: G, sport: 5000, dport: 5353, payload: new Uint8Array(12).fill(1) });
    nat.translate(q, 0, f, CT_ORIGINAL); // C:5000 → B:53 inside
    const e = icmpError(B, C, 3, 3, q);
    const ref = nat.lookupIcmpError(e, 0, e.length);
    expect(ref).toBe((f << 1) | CT_ORIGINAL);
    nat.translateIcmpError(e, 0, e.length, f, CT_ORIGINAL);
    expect(checkError(e)).toEqual({ outer: { src: G, dst: C }, inner: { src: C, dst: G, sport: 5000, dport: 5353 } });
    // and an error from outside about the reply direction (B's answer, un-DNATed on the way out)
    const ans = ip(UDP, { src: B, dst: C, sport: 53, dport: 5000, payload: new Uint8Array(3) });
    nat.translate(ans, 0, f, CT_REPLY); // G:5353 → C:5000
    const e2 = icmpError(R, G, 11, 0, ans);
    const ref2 = nat.lookupIcmpError(e2, 0, e2.length);
    expect(ref2).toBe((f << 1) | CT_REPLY);
    nat.translateIcmpError(e2, 0, e2.length, f, CT_REPLY);
    expect(checkError(e2)).toEqual({ outer: { src: R, dst: B }, inner: { src: B, dst: C, sport: 53, dport: 5000 } });
  });

  it('errors quoting TCP (8 bytes or whole) and ICMP echo', () => {
    const { ct, nat } = setup();
    const f = ct.create(TCP, A, 40000, S, 80, S, 80, G, 61000, 0);
    const seg = ip(TCP, { src: A, dst: S, sport: 40000, dport: 80, payload: new Uint8Array(10).fill(4) });
    nat.translate(seg, 0, f, CT_ORIGINAL);
    const whole = icmpError(R, G, 3, 4, seg); // frag needed, the whole segment quoted
    expect(nat.lookupIcmpError(whole, 0, whole.length)).toBe(f << 1);
    nat.translateIcmpError(whole, 0, whole.length, f, 0);
    expect(checkError(whole)).toEqual({ outer: { src: R, dst: A }, inner: { src: A, dst: S, sport: 40000, dport: 80 } });
    // RFC 792 minimum quote: IP header + 8 bytes (no TCP checksum inside)
    const short = icmpError(R, G, 11, 0, seg.subarray(0, 28));
    nat.translateIcmpError(short, 0, short.length, f, 0);
    expect(check(short)).toMatchObject({ src: R, dst: A });
    const qv = new Ipv4View();
    expect(qv.wrap(short, 28, 20)).toBe(false); // total length says 50, only 28 quoted
    expect(verifyChecksum(short, 28, 20)).toBe(true);
    expect([u32(short, 28 + 12), u32(short, 28 + 16), u16(short, 48), u16(short, 50)]).toEqual([A, S, 40000, 80]);
    // ICMP echo inside ICMP
    const e = ct.create(ICMP, A, 77, S, 77, S, 1000, G, 1000, 0);
    const ping = ip(ICMP, { src: A, dst: S, type: 8, id: 77, payload: new Uint8Array(24).fill(6) });
    nat.translate(ping, 0, e, CT_ORIGINAL);
    const err = icmpError(R, G, 11, 0, ping);
    expect(nat.lookupIcmpError(err, 0, err.length)).toBe(e << 1);
    nat.translateIcmpError(err, 0, err.length, e, 0);
    expect(checkError(err)).toEqual({ outer: { src: R, dst: A }, inner: { src: A, dst: S, sport: 77, dport: 77 } });
  });

  it('refuses what is not an ICMP error about a tracked flow', () => {
    const { ct, nat } = setup();
    const f = ct.create(UDP, A, 5353, S, 53, S, 53, G, 1024, 0);
    const out = ip(UDP, { src: A, dst: S, sport: 5353, dport: 53, payload: new Uint8Array(4) });
    nat.translate(out, 0, f, CT_ORIGINAL);
    const e = icmpError(S, G, 3, 3, out);
    expect(nat.lookupIcmpError(e, 0, 40)).toBe(-1); // len shorter than the packet
    expect(nat.translateIcmpError(e, 0, 40, f, 0)).toBe(false);
    const cut = icmpError(S, G, 3, 3, out.subarray(0, 27)); // quote shorter than IP + 8
    expect(nat.lookupIcmpError(cut, 0, cut.length)).toBe(-1);
    const echo = ip(ICMP, { src: S, dst: G, type: 0, id: 1, payload: out });
    expect(nat.lookupIcmpError(echo, 0, echo.length)).toBe(-1); // not an error
    const other = icmpError(S, G, 3, 3, ip(UDP, { src: G, dst: S, sport: 1, dport: 53 }));
    expect(nat.lookupIcmpError(other, 0, other.length)).toBe(-1); // no such flow
    const tcp = ip(TCP, { src: S, dst: G, sport: 1, dport: 2 });
    expect(nat.lookupIcmpError(tcp, 0, tcp.length)).toBe(-1);
  });
});
