/**
 * Forwarding policy and the making of conntrack flows (with their NAT) for
 * new connections through the router. Docker's rules, as SPEC.md states
 * them:
 *
 *   ingress → egress        new flow
 *   network → uplink        MASQUERADE (src ← uplink address; internal
 *                           networks never get here: nothing leaves them)
 *   network → host link     allowed, no NAT
 *   host link → network     allowed, no NAT (the host reaches containers)
 *   network → network       filtered (isolation), also A → A through the
 *                           router (enable_icc=false must not be bypassed)
 *   uplink → anything       filtered (only replies and published ports)
 *   host link → uplink/host filtered
 *   published port (dst = an uplink or host-link address, proto/port
 *   published)              DNAT to the target; when the packet came from
 *                           a network (hairpin), also SNAT to the target
 *                           network's gateway address so the reply comes
 *                           back through the router.
 *
 * Flows: the original tuple is the packet as received; the reply tuple is
 * what the answer will look like after NAT. The reply's destination port
 * (the source port we give the packet) is kept when that reply tuple is
 * free (ct.tupleInUse), else another is taken from `natPorts` starting at a
 * pseudo-random point (up to 512 probes); ICMP echo identifiers likewise.
 * The flow's mark says where it goes: bit 30 set (a router flow), bit 24
 * NAT (the tuples are not plain inverses), bits 12–23 the original ingress
 * iface, bits 0–11 the original egress iface. Its conntrack zone is the
 * ingress iface + 1 (conntrack's per-zone quota of unassured flows).
 */
import { Conntrack } from '../nat/conntrack.js';
import { IfaceTable, KIND_HOST, KIND_NETWORK, KIND_UPLINK } from './ifaces.js';

export const POLICY_DROP = 0;
export const POLICY_PLAIN = 1;
export const POLICY_MASQ = 2;

/** bit 30, not 31: marks stay small integers (no heap numbers on the hot path) */
export const MARK_VALID = 0x40000000;
export const MARK_NAT = 0x01000000;
const PROBES = 512;

/** What a new flow from iface i to iface e may do (POLICY_*). */
export function policy(t: IfaceTable, i: number, e: number): number {
  const ki = t.kind[i];
  const ke = t.kind[e];
  if (ki === KIND_NETWORK) {
    if (t.internal[i] === 1) return POLICY_DROP;
    if (ke === KIND_UPLINK) return POLICY_MASQ;
    if (ke === KIND_HOST) return POLICY_PLAIN;
    return POLICY_DROP;
  }
  if (ki === KIND_HOST && ke === KIND_NETWORK) return POLICY_PLAIN;
  return POLICY_DROP;
}

export function markOf(i: number, e: number, nat: boolean): number {
  return MARK_VALID | (nat ? MARK_NAT : 0) | (i << 12) | e;
}
export function markIn(m: number): number {
  return (m >>> 12) & 0xfff;
}
export function markOut(m: number): number {
  return m & 0xfff;
}

export class FlowMaker {
  /** create() refused: conntrack full */
  conntrackFull = 0;
  /** no free NAT port/identifier */
  natPortsExhausted = 0;
  private rnd: number;

  constructor(
    private readonly ct: Conntrack,
    private readonly natLo: number,
    private readonly natHi: number,
    seed: number,
  ) {
    if (!(natLo >= 1 && natHi <= 65535 && natLo <= natHi)) throw new Error(`bad NAT port range ${natLo}-${natHi}`);
    this.rnd = (seed | 0) || 0x2545f491;
  }

  /**
   * The port P to use so that (proto, rSrc, rSport, rDst, P) is a free
   * reply tuple (ICMP: rSport = P too), `pref` when possible; −1 when none.
   */
  pickPort(proto: number, rSrc: number, rSport: number, rDst: number, pref: number): number {
    const ct = this.ct;
    const icmp = proto === 1;
    if (!ct.tupleInUse(proto, rSrc, icmp ? pref : rSport, rDst, pref)) return pref;
    const lo = this.natLo;
    const n = this.natHi - lo + 1;
    let x = this.rnd;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rnd = x;
    const start = (x >>> 0) % n;
    const tries = n < PROBES ? n : PROBES;
    for (let k = 0; k < tries; k++) {
      const p = lo + ((start + k) % n);
      if (!ct.tupleInUse(proto, rSrc, icmp ? p : rSport, rDst, p)) return p;
    }
    this.natPortsExhausted++;
    return -1;
  }

  /**
   * A flow for the packet (proto, src:sport → dst:dport) received on i,
   * leaving by e, whose reply must come from rSrc:rSport and go to rDst
   * (rDst's port chosen here, sport preferred). For ICMP echo the ports are
   * the identifier. Returns the flow id or −1 (counted).
   */
  make(proto: number, src: number, sport: number, dst: number, dport: number, rSrc: number, rSport: number, rDst: number, i: number, e: number, now: number): number {
    const p = this.pickPort(proto, rSrc, rSport, rDst, sport);
    if (p < 0) return -1;
    const ct = this.ct;
    const icmp = proto === 1;
    const rs = icmp ? p : rSport;
    // zone = ingress iface + 1: a flood from one network or from outside uses up its own unassured flows (conntrack.ts)
    const f = ct.create(proto, src, sport, dst, dport, rSrc, rs, rDst, p, now, i + 1);
    if (f < 0) {
      this.conntrackFull++;
      return -1;
    }
    const nat = (rDst | 0) !== (src | 0) || p !== sport || (rSrc | 0) !== (dst | 0) || rs !== dport;
    ct.mark[f] = markOf(i, e, nat);
    return f;
  }

  /** Cold: remove every router flow through iface id; returns how many. */
  removeIface(id: number): number {
    const ct = this.ct;
    const mark = ct.mark;
    let n = 0;
    for (let f = 0; f < ct.capacity; f++) {
      if (!ct.inUse(f)) continue;
      const m = mark[f];
      if ((m & MARK_VALID) !== 0 && (markIn(m) === id || markOut(m) === id)) {
        ct.remove(f);
        n++;
      }
    }
    return n;
  }
}
