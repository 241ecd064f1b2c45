/**
 * FragTrack — which flow the later fragments of a datagram belong to.
 *
 * Only the first fragment of a datagram carries the L4 header (ports), so
 * conntrack cannot match the others. When the router forwards a first
 * fragment (MF set, offset 0) of a tracked flow it remembers
 * (src, dst, IP id, proto) as received → (flow << 1) | dir for `ttlMs`
 * (default 30 s, Linux's ipfrag_time); the later fragments are looked up
 * here and follow the same flow (same NAT, same egress). The router does
 * not reassemble: fragments arriving before their first fragment are
 * dropped.
 *
 * A direct-mapped table (size a power of two, default 1024) with a keyed
 * hash; a newer datagram hashing to a busy slot replaces the older one.
 * Nothing allocates after construction.
 */
export class FragTrack {
  private readonly mask: number;
  private readonly k0: number;
  private readonly kSrc: Int32Array;
  private readonly kDst: Int32Array;
  /** id << 8 | proto */
  private readonly kIdProto: Int32Array;
  private readonly val: Int32Array;
  private readonly expires: Float64Array;

  constructor(
    size = 1024,
    seed = 0,
    private readonly ttlMs = 30_000,
  ) {
    if (size < 1 || (size & (size - 1)) !== 0) throw new Error('FragTrack size must be a power of two');
    this.mask = size - 1;
    this.k0 = Math.imul((seed | 0) ^ 0x68e31da4, 0x9e3779b1) | 0;
    this.kSrc = new Int32Array(size);
    this.kDst = new Int32Array(size);
    this.kIdProto = new Int32Array(size);
    this.val = new Int32Array(size).fill(-1);
    this.expires = new Float64Array(size);
  }

  private slot(src: number, dst: number, idProto: number): number {
    let h = Math.imul(src ^ this.k0, 0x9e3779b1) ^ Math.imul(dst, 0x85ebca77) ^ Math.imul(idProto, 0xc2b2ae3d);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    return (h ^ (h >>> 15)) & this.mask;
  }

  remember(src: number, dst: number, id: number, proto: number, ref: number, now: number): void {
    const ip = (id << 8) | proto;
    const s = this.slot(src | 0, dst | 0, ip);
    this.kSrc[s] = src | 0;
    this.kDst[s] = dst | 0;
    this.kIdProto[s] = ip;
    this.val[s] = ref;
    this.expires[s] = now + this.ttlMs;
  }

  /** (flow << 1) | dir remembered for this datagram, or −1. */
  find(src: number, dst: number, id: number, proto: number, now: number): number {
    const ip = (id << 8) | proto;
    const s = this.slot(src | 0, dst | 0, ip);
    if (this.val[s] < 0 || this.kSrc[s] !== (src | 0) || this.kDst[s] !== (dst | 0) || this.kIdProto[s] !== ip) return -1;
    if (now >= this.expires[s]) {
      this.val[s] = -1;
      return -1;
    }
    return this.val[s];
  }

  /** Forget everything (e.g. when flows went away). */
  clear(): void {
    this.val.fill(-1);
  }
}
