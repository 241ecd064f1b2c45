import { describe, expect, it } from 'vitest';
import { parseIpv4 } from '../wire/ipv4.js';
import { CT_ORIGINAL, CT_REPLY, Conntrack, DEFAULT_TIMEOUTS, KEY_STRIDE, TcpState, formatConntrack } from './conntrack.js';
import { tcpClass, tcpNext } from './tcp-state.js';
import { TcpFlags } from '../wire/tcp.js';
import { rng } from '../lab/rng.js';

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const A = parseIpv4('172.18.0.2'); // inside host
const S = parseIpv4('10.0.0.1'); // server
const G = parseIpv4('192.168.1.2'); // uplink address
const { SYN, ACK, FIN, RST, PSH } = TcpFlags;


/** masquerade-style flow: A:sport → S:dport, replies S:dport → G:mapped */
function masq(ct: Conntrack, proto: number, sport: number, dport: number, mapped: number, now: number): number {
  return ct.create(proto, A, sport, S, dport, S, dport, G, mapped, now);
}

describe('Conntrack', () => {
  it('finds both directions of a flow and exposes its tuples', () => {
    const ct = new Conntrack({ capacity: 16, seed: 1 });
    const f = masq(ct, TCP, 40000, 80, 61000, 0);
    expect(f).toBeGreaterThanOrEqual(0);
    expect(ct.size).toBe(1);
    expect(ct.lookup(TCP, A, 40000, S, 80)).toBe((f << 1) | CT_ORIGINAL);
    expect(ct.lookup(TCP, S, 80, G, 61000)).toBe((f << 1) | CT_REPLY);
    expect(ct.lookup(UDP, A, 40000, S, 80)).toBe(-1);
    expect(ct.lookup(TCP, A, 40001, S, 80)).toBe(-1);
    expect(ct.lookup(TCP, G, 61000, S, 80)).toBe(-1); // the translated packet is no key
    expect(ct.proto(f)).toBe(TCP);
    expect([ct.srcIp(f, 0), ct.srcPort(f, 0), ct.dstIp(f, 0), ct.dstPort(f, 0)]).toEqual([A, 40000, S, 80]);
    expect([ct.srcIp(f, 1), ct.srcPort(f, 1), ct.dstIp(f, 1), ct.dstPort(f, 1)]).toEqual([S, 80, G, 61000]);
    expect(ct.counters).toMatchObject({ inserted: 1, searched: 5, found: 2 });
    expect(ct.tupleInUse(TCP, S, 80, G, 61000)).toBe(true);
    expect(ct.tupleInUse(TCP, S, 80, G, 61001)).toBe(false);
    // a second flow may not take a tuple that is in use (either side)
    expect(ct.create(TCP, A, 40000, S, 80, S, 80, G, 61001, 0)).toBe(-1);
    expect(ct.create(TCP, A, 40002, S, 80, S, 80, G, 61000, 0)).toBe(-1);
    expect(ct.counters.clash).toBe(2);
    ct.remove(f);
    expect(ct.size).toBe(0);
    expect(ct.lookup(TCP, A, 40000, S, 80)).toBe(-1);
    expect(ct.lookup(TCP, S, 80, G, 61000)).toBe(-1);
    expect(ct.counters.deleted).toBe(1);
  });

  it('walks the TCP state machine through a handshake and a close, with the timeouts of each state', () => {
    const ct = new Conntrack({ capacity: 16, seed: 2 });
    const T = DEFAULT_TIMEOUTS;
    let now = 1000;
    const f = masq(ct, TCP, 40000, 80, 40000, now);
    expect(ct.state(f)).toBe(TcpState.NONE);
    const step = (dir: number, flags: number, state: number, timeout: number) => {
      now += 7;
      ct.seen(f, dir, flags, 60, now);
      expect(ct.state(f)).toBe(state);
      expect(ct.expires(f)).toBe(now + timeout);
    };
    step(CT_ORIGINAL, SYN, TcpState.SYN_SENT, T.tcpSynSent);
    expect(ct.replied(f)).toBe(false);
    step(CT_ORIGINAL, SYN, TcpState.SYN_SENT, T.tcpSynSent); // retransmitted SYN
    step(CT_REPLY, SYN | ACK, TcpState.SYN_RECV, T.tcpSynRecv);
    expect(ct.replied(f)).toBe(true);
    expect(ct.assured(f)).toBe(false);
    step(CT_ORIGINAL, ACK, TcpState.ESTABLISHED, T.tcpEstablished);
    expect(ct.assured(f)).toBe(true);
    step(CT_ORIGINAL, ACK | PSH, TcpState.ESTABLISHED, T.tcpEstablished);
    step(CT_REPLY, ACK, TcpState.ESTABLISHED, T.tcpEstablished);
    step(CT_ORIGINAL, FIN | ACK, TcpState.FIN_WAIT, T.tcpFinWait);
    step(CT_REPLY, ACK, TcpState.CLOSE_WAIT, T.tcpCloseWait);
    step(CT_REPLY, FIN | ACK, TcpState.LAST_ACK, T.tcpLastAck);
    step(CT_ORIGINAL, ACK, TcpState.TIME_WAIT, T.tcpTimeWait);
    step(CT_ORIGINAL, ACK, TcpState.TIME_WAIT, T.tcpTimeWait);
    expect(ct.packets(f, 0)).toBe(7);
    expect(ct.packets(f, 1)).toBe(4);
    expect(ct.bytes(f, 1)).toBe(240);
    // a new SYN on the same tuple reopens it
    step(CT_ORIGINAL, SYN, TcpState.SYN_SENT, T.tcpSynSent);
    expect(ct.replied(f)).toBe(false);
    expect(ct.packets(f, 0)).toBe(1);
    step(CT_REPLY, SYN | ACK, TcpState.SYN_RECV, T.tcpSynRecv);
    step(CT_ORIGINAL, ACK, TcpState.ESTABLISHED, T.tcpEstablished);
    step(CT_REPLY, RST, TcpState.CLOSE, T.tcpClose);
  });

  it('keeps the state on segments that do not fit it, picks up running connections, closes on RST', () => {
    const ct = new Conntrack({ capacity: 16, seed: 3 });
    const f = masq(ct, TCP, 1, 2, 3, 0);
    ct.seen(f, CT_ORIGINAL, FIN, 40, 1); // FIN with nothing open
    expect(ct.state(f)).toBe(TcpState.NONE);
    expect(ct.expires(f)).toBe(1 + DEFAULT_TIMEOUTS.tcpClose);
    ct.seen(f, CT_ORIGINAL, ACK, 40, 2); // mid-stream pickup
    expect(ct.state(f)).toBe(TcpState.ESTABLISHED);
    expect(ct.assured(f)).toBe(false); // not yet replied
    ct.seen(f, CT_REPLY, ACK, 40, 3);
    expect(ct.assured(f)).toBe(true); // replied and established
    ct.seen(f, CT_ORIGINAL, SYN, 40, 5); // SYN on an established flow: ignored
    expect(ct.state(f)).toBe(TcpState.ESTABLISHED);
    ct.seen(f, CT_ORIGINAL, RST | ACK, 40, 6);
    expect(ct.state(f)).toBe(TcpState.CLOSE);
    expect(ct.expires(f)).toBe(6 + DEFAULT_TIMEOUTS.tcpClose);
    // SYN-ACK from the reply side only answers a SYN
    const g = masq(ct, TCP, 4, 5, 6, 0);
    ct.seen(g, CT_REPLY, SYN | ACK, 40, 1);
    expect(ct.state(g)).toBe(TcpState.NONE);
  });

  it('UDP: 30 s while unreplied, 120 s once replied; ICMP: 30 s; custom timeouts', () => {
    const ct = new Conntrack({ capacity: 16, seed: 4 });
    const u = masq(ct, UDP, 5353, 53, 5353, 0);
    expect(ct.expires(u)).toBe(30_000);
    ct.seen(u, CT_ORIGINAL, 0, 60, 100);
    expect(ct.expires(u)).toBe(30_100);
    expect(ct.replied(u)).toBe(false);
    ct.seen(u, CT_REPLY, 0, 90, 200);
    expect(ct.replied(u)).toBe(true);
    expect(ct.assured(u)).toBe(true);
    expect(ct.expires(u)).toBe(120_200);
    ct.seen(u, CT_ORIGINAL, 0, 60, 300);
    expect(ct.expires(u)).toBe(120_300);
    const i = ct.create(ICMP, A, 7, S, 7, S, 9, G, 9, 0);
    ct.seen(i, CT_ORIGINAL, 0, 84, 50);
    expect(ct.expires(i)).toBe(30_050);
    ct.seen(i, CT_REPLY, 0, 84, 60);
    expect(ct.expires(i)).toBe(30_060);
    const ct2 = new Conntrack({ capacity: 4, seed: 4, timeouts: { udp: 5000 } });
    const u2 = masq(ct2, UDP, 1, 2, 3, 0);
    ct2.seen(u2, CT_ORIGINAL, 0, 60, 10);
    expect(ct2.expires(u2)).toBe(5010);
  });

  it('tick expires a flow exactly at its timeout, not before', () => {
    const ct = new Conntrack({ capacity: 64, seed: 5 });
    const u = masq(ct, UDP, 1000, 53, 1000, 0);
    ct.seen(u, CT_ORIGINAL, 0, 60, 1000);
    const t = masq(ct, TCP, 2000, 80, 2000, 0);
    ct.seen(t, CT_ORIGINAL, SYN, 60, 1000);
    expect(ct.tick(1000 + 30_000 - 1)).toBe(0);
    expect(ct.size).toBe(2);
    expect(ct.tick(1000 + 30_000)).toBe(1);
    expect(ct.lookup(UDP, A, 1000, S, 53)).toBe(-1);
    expect(ct.lookup(UDP, S, 53, G, 1000)).toBe(-1);
    expect(ct.lookup(TCP, A, 2000, S, 80)).toBe(t << 1);
    expect(ct.tick(1000 + 120_000 - 1)).toBe(0);
    expect(ct.tick(1000 + 120_000)).toBe(1);
    expect(ct.size).toBe(0);
    expect(ct.counters.expired).toBe(2);
  });

  it('tick is incremental but visits every flow of a large table within a few calls', () => {
    const ct = new Conntrack({ capacity: 131072, seed: 6 });
    for (let i = 0; i < 100_000; i++) expect(ct.create(UDP, A + (i >>> 14), i & 0x3fff, S, 53, S, 53, G + (i >>> 16), i & 0xffff, 0)).toBeGreaterThanOrEqual(0); // prettier-ignore
    let n = 0;
    let calls = 0;
    for (let t = 30_000; n < 100_000 && calls < 10; t += 1000, calls++) n += ct.tick(t);
    expect(n).toBe(100_000);
    expect(calls).toBeLessThanOrEqual(4);
    expect(ct.size).toBe(0);
  });

  it('full table: evicts unreplied flows first; replied flows survive a flood of 10x capacity', () => {
    const cap = 256;
    const ct = new Conntrack({ capacity: cap, seed: 7 });
    const est: number[] = [];
    // half the table: established, replied TCP flows
    for (let i = 0; i < cap / 2; i++) {
      const f = masq(ct, TCP, 10_000 + i, 80, 10_000 + i, 0);
      ct.seen(f, CT_ORIGINAL, SYN, 60, 0);
      ct.seen(f, CT_REPLY, SYN | ACK, 60, 0);
      ct.seen(f, CT_ORIGINAL, ACK, 60, 0);
      est.push(f);
    }
    // a flood of new unreplied flows (SYN flood / UDP scan)
    let refused = 0;
    for (let i = 0; i < 10 * cap; i++) {
      const src = parseIpv4('203.0.113.0') + (i % 250);
      const f = ct.create(UDP, src, 1024 + i, G, 9999, G, 9999, src, 1024 + i, 10 + i);
      if (f < 0) refused++;
      else ct.seen(f, CT_ORIGINAL, 0, 60, 10 + i);
    }
    expect(ct.size).toBe(cap);
    expect(refused).toBe(ct.counters.full);
    expect(ct.counters.evicted).toBe(10 * cap - cap / 2 - refused);
    // a run of 64 replied flows costs one refusal: a few percent of the flood
    expect(refused).toBeLessThan((10 * cap) / 20);
    for (let i = 0; i < cap / 2; i++) {
      expect(ct.lookup(TCP, A, 10_000 + i, S, 80)).toBe(est[i] << 1);
      expect(ct.lookup(TCP, S, 80, G, 10_000 + i)).toBe((est[i] << 1) | 1);
      expect(ct.state(est[i])).toBe(TcpState.ESTABLISHED);
    }
    // all replied: a new flow is refused, nothing is evicted
    const ct2 = new Conntrack({ capacity: 8, seed: 8 });
    for (let i = 0; i < 8; i++) ct2.seen(masq(ct2, UDP, i, 53, i, 0), CT_REPLY, 0, 60, 0);
    expect(masq(ct2, UDP, 100, 53, 100, 1)).toBe(-1);
    expect(ct2.counters.full).toBe(1);
    expect(ct2.counters.evicted).toBe(0);
    // … unless one of them has expired already
    const f = masq(ct2, UDP, 100, 53, 100, 200_000);
    expect(f).toBeGreaterThanOrEqual(0);
    expect(ct2.counters.expired).toBe(1);
    expect(ct2.size).toBe(8);
  });

  it('evicts the unreplied flow closest to expiry among those it scans', () => {
    const ct = new Conntrack({ capacity: 4, seed: 9 });
    const f0 = masq(ct, UDP, 1, 53, 1, 0);
    const f1 = masq(ct, UDP, 2, 53, 2, 0);
    const f2 = masq(ct, UDP, 3, 53, 3, 0);
    const f3 = masq(ct, UDP, 4, 53, 4, 0);
    ct.seen(f0, CT_REPLY, 0, 1, 10);
    ct.seen(f1, CT_ORIGINAL, 0, 1, 20);
    ct.seen(f2, CT_ORIGINAL, 0, 1, 5); // unreplied, oldest
    ct.seen(f3, CT_ORIGINAL, 0, 1, 30);
    const n = masq(ct, UDP, 5, 53, 5, 40);
    expect(n).toBe(f2); // its id is reused
    expect(ct.lookup(UDP, A, 3, S, 53)).toBe(-1);
    for (const [p, f] of [[1, f0], [2, f1], [4, f3], [5, n]]) expect(ct.lookup(UDP, A, p, S, 53)).toBe(f << 1);
  });

  /** a spoofed SYN the server answered: SYN_SENT → SYN_RECV, replied but never ACKed (not assured) */
  function synRecv(ct: Conntrack, src: number, sport: number, now: number, zone: number): number {
    const f = ct.create(TCP, src, sport, G, 8080, A, 80, src, sport, now, zone);
    if (f < 0) return f;
    ct.seen(f, CT_ORIGINAL, SYN, 60, now);
    ct.seen(f, CT_REPLY, SYN | ACK, 60, now);
    return f;
  }
  /** a full handshake from A (masquerade), zone `zone`: assured */
  function established(ct: Conntrack, sport: number, now: number, zone: number): number {
    const f = ct.create(TCP, A, sport, S, 80, S, 80, G, sport, now, zone);
    ct.seen(f, CT_ORIGINAL, SYN, 60, now);
    ct.seen(f, CT_REPLY, SYN | ACK, 60, now);
    ct.seen(f, CT_ORIGINAL, ACK, 60, now);
    return f;
  }
  const spoofed = (i: number) => parseIpv4('198.51.100.0') + (i % 256);

  it('SYN flood: a table full of answered but unassured flows (SYN_RECV) still takes new flows; assured ones survive', () => {
    const cap = 512;
    const ct = new Conntrack({ capacity: cap, seed: 11 });
    const est: number[] = [];
    for (let i = 0; i < 100; i++) est.push(established(ct, 20_000 + i, 0, 1));
    expect(ct.unassured).toBe(0);
    // 20x capacity spoofed SYNs the container answers, from outside (zone 2)
    let refused = 0;
    for (let i = 0; i < 20 * cap; i++) if (synRecv(ct, spoofed(i), 1024 + (i >> 8), 1 + i, 2) < 0) refused++;
    expect(ct.size).toBe(cap);
    expect(ct.unassured).toBe(cap - 100);
    expect(ct.zoneUnassured[2]).toBe(cap - 100);
    // the old rule (evict unreplied only) would refuse nearly all of them
    expect(ct.counters.earlyDrop).toBeGreaterThan(19 * cap);
    expect(refused).toBe(ct.counters.full);
    expect(refused).toBeLessThan(cap);
    // a new connection after the flood gets in, from outside and from a network
    const now = 1 + 20 * cap;
    expect(synRecv(ct, parseIpv4('192.0.2.1'), 5555, now, 2)).toBeGreaterThanOrEqual(0);
    const n = ct.create(TCP, A, 30_000, S, 443, S, 443, G, 30_000, now, 1);
    expect(n).toBeGreaterThanOrEqual(0);
    ct.seen(n, CT_ORIGINAL, SYN, 60, now);
    // every established flow is still there and established
    for (let i = 0; i < 100; i++) {
      expect(ct.lookup(TCP, A, 20_000 + i, S, 80)).toBe(est[i] << 1);
      expect(ct.state(est[i])).toBe(TcpState.ESTABLISHED);
      expect(ct.assured(est[i])).toBe(true);
    }
    // the oldest flood flows went first: the newest ones are still there
    expect(ct.lookup(TCP, spoofed(20 * cap - 1), 1024 + ((20 * cap - 1) >> 8), G, 8080)).toBeGreaterThanOrEqual(0);
    expect(ct.lookup(TCP, spoofed(0), 1024, G, 8080)).toBe(-1);
  });

  it('a table of assured flows refuses; unassured counts follow assure, reopen and removal', () => {
    const ct = new Conntrack({ capacity: 4, seed: 12 });
    const fs = [0, 1, 2, 3].map((i) => established(ct, 100 + i, 0, 3));
    expect(ct.create(TCP, A, 999, S, 80, S, 80, G, 999, 1, 3)).toBe(-1);
    expect(ct.counters.full).toBe(1);
    expect(ct.zoneUnassured[3]).toBe(0);
    // RST, then a new SYN on the same tuples: reopened, unassured again
    ct.seen(fs[0], CT_ORIGINAL, RST, 40, 2);
    ct.seen(fs[0], CT_ORIGINAL, SYN, 60, 3);
    expect(ct.assured(fs[0])).toBe(false);
    expect(ct.zoneUnassured[3]).toBe(1);
    expect(ct.unassured).toBe(1);
    // now it may go for a new flow
    const n = ct.create(TCP, A, 999, S, 80, S, 80, G, 999, 4, 3);
    expect(n).toBe(fs[0]);
    expect(ct.counters.evicted + ct.counters.earlyDrop).toBe(1);
    expect(ct.zoneUnassured[3]).toBe(1); // the new one
    ct.remove(n);
    expect(ct.zoneUnassured[3]).toBe(0);
    expect(ct.unassured).toBe(0);
    expect(ct.zone(fs[1])).toBe(3);
    expect(ct.create(UDP, A, 1, S, 53, S, 53, G, 1, 5, 8191)).toBeGreaterThanOrEqual(0);
    expect(ct.zoneUnassured[8191]).toBe(1);
  });

  it('zone quota: a flood from one zone uses up its own flows, not the new flows of another zone', () => {
    const cap = 256;
    const ct = new Conntrack({ capacity: cap, seed: 13 }); // quota 64
    expect(ct.zoneQuota).toBe(64);
    // the table fills with the flood (zone 2); then zone 1 opens connections
    // whose handshakes are still under way (SYN_SENT) while the flood goes on
    let i = 0;
    for (; i < cap; i++) synRecv(ct, spoofed(i), 2000 + (i >> 8), 1 + i, 2);
    const mine: number[] = [];
    for (let k = 0; k < 32; k++) {
      const f = ct.create(TCP, A, 40_000 + k, S, 80, S, 80, G, 40_000 + k, 1 + i, 1);
      expect(f).toBeGreaterThanOrEqual(0);
      ct.seen(f, CT_ORIGINAL, SYN, 60, 1 + i);
      mine.push(f);
      // ten times more flood in between
      for (let j = 0; j < 10; j++, i++) synRecv(ct, spoofed(i), 2000 + (i >> 8), 1 + i, 2);
    }
    // there, zone 1's SYN_SENT flows (120 s) outlive the flood's SYN_RECV
    // ones (60 s) anyway; to see the quota at work, make the flood's flows
    // expire later than zone 1's and flood on: only the quota saves them
    const slow = new Conntrack({ capacity: cap, seed: 14, timeouts: { tcpSynRecv: 1e9 } });
    let t = 0;
    for (; t < cap; t++) synRecv(slow, spoofed(t), 3000 + (t >> 8), 1 + t, 2);
    const theirs: number[] = [];
    for (let k = 0; k < 32; k++) {
      const f = slow.create(TCP, A, 41_000 + k, S, 80, S, 80, G, 41_000 + k, 1 + t, 1);
      expect(f).toBeGreaterThanOrEqual(0);
      slow.seen(f, CT_ORIGINAL, SYN, 60, 1 + t);
      theirs.push(f);
    }
    for (let j = 0; j < 20 * cap; j++, t++) synRecv(slow, spoofed(t), 3000 + (t >> 8), 1 + t, 2);
    for (let k = 0; k < 32; k++) {
      expect(slow.lookup(TCP, A, 41_000 + k, S, 80)).toBe(theirs[k] << 1);
      expect(slow.state(theirs[k])).toBe(TcpState.SYN_SENT);
    }
    expect(slow.zoneUnassured[1]).toBe(32);
    expect(slow.counters.quotaDrop).toBe(slow.counters.evicted + slow.counters.earlyDrop);
    // they complete their handshakes later, as if nothing happened
    for (const f of theirs) {
      slow.seen(f, CT_REPLY, SYN | ACK, 60, t);
      slow.seen(f, CT_ORIGINAL, ACK, 60, t);
      expect(slow.assured(f)).toBe(true);
    }
    for (let k = 0; k < 32; k++) expect(ct.lookup(TCP, A, 40_000 + k, S, 80)).toBe(mine[k] << 1);

    // without the quota (one zone for all), the same flood pushes them out
    const flat = new Conntrack({ capacity: cap, seed: 14, timeouts: { tcpSynRecv: 1e9 }, zoneQuota: cap + 1 });
    let u = 0;
    for (; u < cap; u++) synRecv(flat, spoofed(u), 3000 + (u >> 8), 1 + u, 2);
    for (let k = 0; k < 32; k++) flat.seen(flat.create(TCP, A, 41_000 + k, S, 80, S, 80, G, 41_000 + k, 1 + u, 1), CT_ORIGINAL, SYN, 60, 1 + u);
    for (let j = 0; j < 20 * cap; j++, u++) synRecv(flat, spoofed(u), 3000 + (u >> 8), 1 + u, 2);
    let left = 0;
    for (let k = 0; k < 32; k++) if (flat.lookup(TCP, A, 41_000 + k, S, 80) >= 0) left++;
    expect(left).toBeLessThan(32);
  });

  it('zone quota: a zone at its quota takes only from zones at quota; others keep their new flows', () => {
    // capacity 4, quota 3: zone 6 has one new flow (SYN_SENT), expiring first
    const ct = new Conntrack({ capacity: 4, seed: 15, zoneQuota: 3, timeouts: { tcpSynRecv: 1e9 } });
    const b = ct.create(TCP, A, 7001, S, 80, S, 80, G, 7001, 0, 6);
    ct.seen(b, CT_ORIGINAL, SYN, 60, 0);
    for (let i = 0; i < 3; i++) synRecv(ct, spoofed(i), 100 + i, 1, 5);
    expect(ct.zoneUnassured[5]).toBe(3);
    // zone 5 (at quota) floods on: it takes its own flows, never zone 6's (closest to expiry though it is)
    for (let i = 3; i < 100; i++) expect(synRecv(ct, spoofed(i), 100 + i, 1 + i, 5)).toBeGreaterThanOrEqual(0);
    expect(ct.lookup(TCP, A, 7001, S, 80)).toBe(b << 1);
    expect(ct.counters.quotaDrop).toBe(97);
    expect(ct.counters.earlyDrop).toBe(97);
    // zone 6 (below quota) takes room from zone 5 (at quota)
    expect(ct.create(TCP, A, 7002, S, 80, S, 80, G, 7002, 200, 6)).toBeGreaterThanOrEqual(0);
    expect(ct.zoneUnassured[6]).toBe(2);
    expect(ct.zoneUnassured[5]).toBe(2);
    expect(ct.lookup(TCP, A, 7001, S, 80)).toBe(b << 1);

    // a window of 64 flows of a zone below quota: a new flow of a zone at quota looks further, and takes its own zone's
    const mid = new Conntrack({ capacity: 256, seed: 16, zoneQuota: 100 });
    for (let i = 0; i < 64; i++) mid.seen(mid.create(TCP, A, 8000 + i, S, 80, S, 80, G, 8000 + i, 0, 6), CT_ORIGINAL, SYN, 60, 0);
    for (let i = 0; i < 192; i++) synRecv(mid, spoofed(i), 200 + i, 1, 5);
    expect(mid.size).toBe(256);
    expect(synRecv(mid, spoofed(500), 500, 2, 5)).toBeGreaterThanOrEqual(0);
    expect([mid.counters.quotaDrop, mid.counters.quotaRefused, mid.zoneUnassured[6]]).toEqual([1, 0, 64]);
    // all the 4 × 64 flows in reach belong to a zone below quota: it is refused
    const big = new Conntrack({ capacity: 1024, seed: 16, zoneQuota: 400 });
    for (let i = 0; i < 320; i++) big.seen(big.create(TCP, A, 8000 + i, S, 80, S, 80, G, 8000 + i, 0, 6), CT_ORIGINAL, SYN, 60, 0);
    for (let i = 0; i < 704; i++) synRecv(big, spoofed(i), 200 + i, 1, 5);
    expect(big.size).toBe(1024);
    expect(synRecv(big, spoofed(900), 900, 2, 5)).toBe(-1);
    expect(big.counters.quotaRefused).toBe(1);
    expect(big.counters.full).toBe(1);
    // the next try reaches zone 5's own flows
    expect(synRecv(big, spoofed(901), 901, 3, 5)).toBeGreaterThanOrEqual(0);
    expect(big.zoneUnassured[6]).toBe(320);
    // a zone below quota facing only flows of zones below quota early-drops one of them (Linux's rule)
    const low = new Conntrack({ capacity: 2, seed: 17, zoneQuota: 2 });
    low.seen(low.create(TCP, A, 1, S, 80, S, 80, G, 1, 0, 8), CT_ORIGINAL, SYN, 60, 0);
    low.seen(low.create(TCP, A, 2, S, 80, S, 80, G, 2, 0, 9), CT_ORIGINAL, SYN, 60, 0);
    expect(low.create(TCP, A, 3, S, 80, S, 80, G, 3, 1, 10)).toBeGreaterThanOrEqual(0);
    expect(low.counters.evicted).toBe(1);
    expect(low.counters.quotaDrop).toBe(0);
  });

  it('backward-shift deletion keeps every remaining flow findable (random operations vs a Map)', () => {
    const r = rng(42);
    const cap = 512;
    const ct = new Conntrack({ capacity: cap, seed: 10 });
    const model = new Map<string, { f: number; dir: number }>();
    const flows = new Map<number, [string, string]>();
    const key = (p: number, s: number, sp: number, d: number, dp: number) => `${p}/${s}/${sp}/${d}/${dp}`;
    // small key space so chains collide and deletions shift entries
    const rIp = () => (parseIpv4('10.0.0.0') + Math.floor(r() * 4)) >>> 0;
    const rPort = () => Math.floor(r() * 64);
    for (let op = 0; op < 20_000; op++) {
      if (r() < 0.55 && ct.size < cap) {
        const p = r() < 0.5 ? TCP : UDP;
        const [s, sp, d, dp, rs, rsp, rd, rdp] = [rIp(), rPort(), rIp(), rPort(), rIp(), rPort(), rIp(), rPort()];
        const ko = key(p, s, sp, d, dp);
        const kr = key(p, rs, rsp, rd, rdp);
        const f = ct.create(p, s, sp, d, dp, rs, rsp, rd, rdp, 0);
        if (model.has(ko) || model.has(kr) || ko === kr) expect(f).toBe(-1);
        else {
          expect(f).toBeGreaterThanOrEqual(0);
          model.set(ko, { f, dir: 0 });
          model.set(kr, { f, dir: 1 });
          flows.set(f, [ko, kr]);
        }
      } else if (flows.size > 0) {
        const ids = [...flows.keys()];
        const f = ids[Math.floor(r() * ids.length)];
        const [ko, kr] = flows.get(f)!;
        ct.remove(f);
        model.delete(ko);
        model.delete(kr);
        flows.delete(f);
      }
      if (op % 1000 === 999) {
        expect(ct.size).toBe(flows.size);
        for (const [k, v] of model) {
          const [p, s, sp, d, dp] = k.split('/').map(Number);
          expect(ct.lookup(p, s, sp, d, dp)).toBe((v.f << 1) | v.dir);
        }
        // and absent keys stay absent
        for (let i = 0; i < 200; i++) {
          const p = TCP, s = rIp(), sp = rPort(), d = rIp(), dp = rPort(); // prettier-ignore
          expect(ct.lookup(p, s, sp, d, dp) >= 0).toBe(model.has(key(p, s, sp, d, dp)));
        }
      }
    }
    for (const f of [...flows.keys()]) ct.remove(f);
    expect(ct.size).toBe(0);
    expect(ct.idx.every((w, i) => (i & 1) !== 1 || w === -1)).toBe(true);
  });

  it('lookupBulk answers like lookup, for hits, misses and both directions', () => {
    const r = rng(5);
    const ct = new Conntrack({ capacity: 2048, seed: 12 });
    const flows: number[][] = [];
    for (let i = 0; i < 1500; i++) {
      const t = [A + (i % 7), 1024 + i, S + (i % 3), 80, S + (i % 3), 80, G, 20_000 + i];
      if (ct.create(i % 2 ? TCP : UDP, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0) >= 0) flows.push([i % 2 ? TCP : UDP, ...t]);
    }
    const n = 200;
    const keys = new Int32Array(n * KEY_STRIDE);
    const want: number[] = [];
    for (let k = 0; k < n; k++) {
      const f = flows[Math.floor(r() * flows.length)];
      const dir = r() < 0.5 ? 0 : 1;
      const miss = r() < 0.2;
      const [p, s, sp, d, dp] = dir === 0 ? [f[0], f[1], f[2], f[3], f[4]] : [f[0], f[5], f[6], f[7], f[8]];
      const key = [p, s, miss ? sp ^ 0x8000 : sp, d, dp];
      keys.set([key[1] | 0, key[3] | 0, (key[2] << 16) | key[4], key[0], 0, 0, 1000 + k, 2000 + k], k * KEY_STRIDE);
      want.push(ct.lookup(key[0], key[1], key[2], key[3], key[4]));
    }
    const before = { ...ct.counters };
    const hits = ct.lookupBulk(keys, n);
    expect(hits).toBe(want.filter((x) => x >= 0).length);
    for (let k = 0; k < n; k++) {
      expect(keys[k * KEY_STRIDE + 4]).toBe(want[k]);
      expect([keys[k * KEY_STRIDE + 6], keys[k * KEY_STRIDE + 7]]).toEqual([1000 + k, 2000 + k]); // the caller's words
    }
    expect(ct.counters.searched - before.searched).toBe(n);
    expect(ct.counters.found - before.found).toBe(hits);
    expect(ct.lookupBulk(keys, 0)).toBe(0);
  });

  it('tells apart keys whose 32-bit hash tags collide (find, lookupBulk, remove)', () => {
    const ct = new Conntrack({ capacity: 64, seed: 13 });
    // birthday search for two UDP keys (source and destination address vary)
    // with the same tag (one word alone cannot collide: the hash is a
    // bijection of each word)
    const seen = new Map<number, number>();
    let a = -1;
    let b = -1;
    const src = (i: number) => (A + (i & 0x3ff)) >>> 0;
    const dst = (i: number) => (S + (i >>> 10)) >>> 0;
    const P = (5353 << 16) | 53;
    for (let i = 0; i < 1 << 20 && a < 0; i++) {
      const tag = ct.index.hash(UDP, src(i) | 0, dst(i) | 0, P);
      const j = seen.get(tag);
      if (j !== undefined) [a, b] = [j, i];
      else seen.set(tag, i);
    }
    expect(a).toBeGreaterThanOrEqual(0);
    expect(ct.index.hash(UDP, src(a) | 0, dst(a) | 0, P)).toBe(ct.index.hash(UDP, src(b) | 0, dst(b) | 0, P));
    const fa = ct.create(UDP, src(a), 5353, dst(a), 53, dst(a), 53, G, 1, 0);
    const fb = ct.create(UDP, src(b), 5353, dst(b), 53, dst(b), 53, G, 2, 0);
    expect(ct.lookup(UDP, src(a), 5353, dst(a), 53)).toBe(fa << 1);
    expect(ct.lookup(UDP, src(b), 5353, dst(b), 53)).toBe(fb << 1);
    const keys = new Int32Array(3 * KEY_STRIDE);
    keys.set([src(b) | 0, dst(b) | 0, P, UDP], 0);
    keys.set([src(a) | 0, dst(a) | 0, P, UDP], KEY_STRIDE);
    keys.set([src(a) | 0, dst(b) | 0, P, UDP], 2 * KEY_STRIDE);
    expect(ct.lookupBulk(keys, 3)).toBe(2);
    expect([keys[4], keys[KEY_STRIDE + 4], keys[2 * KEY_STRIDE + 4]]).toEqual([fb << 1, fa << 1, -1]);
    ct.remove(fa);
    expect(ct.lookup(UDP, src(a), 5353, dst(a), 53)).toBe(-1);
    expect(ct.lookup(UDP, src(b), 5353, dst(b), 53)).toBe(fb << 1);
    expect(ct.tupleInUse(UDP, src(a), 5353, dst(a), 53)).toBe(false);
  });

  it('classifies segments and steps states as the table in tcp-state.ts says', () => {
    expect([0x02, 0x12, 0x11, 0x10, 0x14, 0x04, 0x00, 0x18].map(tcpClass)).toEqual([0, 1, 2, 3, 4, 4, 5, 3]);
    expect(tcpNext(TcpState.NONE, 0, 0x02)).toBe(TcpState.SYN_SENT);
    expect(tcpNext(TcpState.SYN_SENT, 1, 0x12)).toBe(TcpState.SYN_RECV);
    expect(tcpNext(TcpState.SYN_SENT, 0, 0x12)).toBe(TcpState.SYN_SENT);
    expect(tcpNext(TcpState.ESTABLISHED, 1, 0x04)).toBe(TcpState.CLOSE);
    expect(tcpNext(TcpState.CLOSE, 0, 0x02)).toBe(TcpState.SYN_SENT);
    expect(tcpNext(TcpState.NONE, 1, 0x10)).toBe(TcpState.NONE);
  });

  it('counts packets past 2^32 in a direction', () => {
    const ct = new Conntrack({ capacity: 4, seed: 14 });
    const f = masq(ct, UDP, 1, 2, 3, 0);
    ct.recU[(f << 4) + 14] = 0xffffffff; // orig packets about to wrap
    ct.seen(f, CT_ORIGINAL, 0, 100, 1);
    ct.seen(f, CT_ORIGINAL, 0, 100, 2);
    expect(ct.packets(f, 0)).toBe(2 ** 32 + 1);
    expect(ct.packets(f, 1)).toBe(0);
    expect(ct.bytes(f, 0)).toBe(200);
  });

  it('lists flows and formats them like conntrack -L', () => {
    const ct = new Conntrack({ capacity: 16, seed: 11 });
    const t = masq(ct, TCP, 40000, 80, 40000, 0);
    ct.seen(t, CT_ORIGINAL, SYN, 60, 0);
    ct.seen(t, CT_REPLY, SYN | ACK, 60, 0);
    ct.seen(t, CT_ORIGINAL, ACK, 60, 0);
    ct.seen(t, CT_ORIGINAL, ACK, 60, 0);
    ct.seen(t, CT_REPLY, ACK, 60, 0);
    ct.mark[t] = 3;
    const u = masq(ct, UDP, 5353, 53, 1024, 0);
    ct.seen(u, CT_ORIGINAL, 0, 60, 0);
    const i = ct.create(ICMP, A, 7, S, 7, S, 9, G, 9, 0);
    ct.seen(i, CT_ORIGINAL, 0, 84, 0);
    ct.seen(i, CT_REPLY, 0, 84, 0);
    const list = ct.list(1000);
    expect(list).toHaveLength(3);
    expect(list.find((x) => x.id === t)).toMatchObject({ proto: 6, state: 'ESTABLISHED', timeoutSec: 431999, replied: true, assured: true, mark: 3 }); // prettier-ignore
    const text = formatConntrack(list).split('\n');
    expect(text).toContain(
      'tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=10.0.0.1 sport=40000 dport=80 packets=3 bytes=180 src=10.0.0.1 dst=192.168.1.2 sport=80 dport=40000 packets=2 bytes=120 [ASSURED] mark=3 use=1',
    );
    expect(text).toContain(
      'udp      17 29 src=172.18.0.2 dst=10.0.0.1 sport=5353 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.0.0.1 dst=192.168.1.2 sport=53 dport=1024 packets=0 bytes=0 mark=0 use=1',
    );
    expect(text).toContain(
      'icmp     1 29 src=172.18.0.2 dst=10.0.0.1 type=8 code=0 id=7 packets=1 bytes=84 src=10.0.0.1 dst=192.168.1.2 type=0 code=0 id=9 packets=1 bytes=84 [ASSURED] mark=0 use=1',
    );
  });

  it('refuses impossible capacities and reports its memory', () => {
    expect(() => new Conntrack({ capacity: 0 })).toThrow();
    expect(() => new Conntrack({ capacity: 1.5 })).toThrow();
    const ct = new Conntrack({ capacity: 1000 });
    expect(ct.index.slots).toBe(4096);
    expect(ct.tableBytes).toBe(4096 * 8 + 1000 * (64 + 4 + 4));
  });
});
