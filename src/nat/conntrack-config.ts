/**
 * Conntrack's configuration and counters (types and netfilter's default
 * timeouts); see conntrack.ts.
 */

export interface Timeouts {
  tcpSynSent: number;
  tcpSynRecv: number;
  tcpEstablished: number;
  tcpFinWait: number;
  tcpCloseWait: number;
  tcpLastAck: number;
  tcpTimeWait: number;
  tcpClose: number;
  udp: number;
  udpStream: number;
  icmp: number;
  /** other protocols (netfilter's generic timeout) */
  generic: number;
}

/** netfilter's defaults (nf_conntrack_*_timeout*), in ms */
export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = {
  tcpSynSent: 120_000,
  tcpSynRecv: 60_000,
  tcpEstablished: 432_000_000,
  tcpFinWait: 120_000,
  tcpCloseWait: 60_000,
  tcpLastAck: 30_000,
  tcpTimeWait: 120_000,
  tcpClose: 10_000,
  udp: 30_000,
  udpStream: 120_000,
  icmp: 30_000,
  generic: 600_000,
};

export interface ConntrackOptions {
  /** maximum number of flows (default 131072) */
  capacity?: number;
  /** hash key (default: random) */
  seed?: number;
  timeouts?: Partial<Timeouts>;
  /**
   * unassured flows one zone may hold before its own unassured flows are
   * the ones a full table drops first, and before it may no longer take
   * room from other zones (default: a quarter of the capacity); see
   * "Bounds" in conntrack.ts
   */
  zoneQuota?: number;
}

/** zones are 0..MAX_ZONE (13 bits of a flow's meta word); 0 = no zone given */
export const MAX_ZONE = 0x1fff;

/**
 * The daemon's conntrack capacity: `USERNET_CONNTRACK_CAPACITY` when set (a
 * hidden knob for tests that fill the table), else the default 131072.
 */
export function capacityFromEnv(v: string | undefined): number {
  if (v === undefined || v === '') return 131072;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1 << 22) throw new Error(`USERNET_CONNTRACK_CAPACITY "${v}": expected an integer 1..4194304`);
  return n;
}

export interface ConntrackCounters {
  inserted: number;
  /** remove() calls that removed a flow */
  deleted: number;
  /** removed by tick() (or reclaimed by create()) past their timeout */
  expired: number;
  /** full table: never-replied flows dropped to make room (early drop) */
  evicted: number;
  /**
   * full table: replied but not yet assured flows (TCP SYN_RECV, a SYN
   * answered but never ACKed: a SYN flood) dropped to make room (early drop)
   */
  earlyDrop: number;
  /** of evicted + earlyDrop: victims taken because their zone was at or over its quota */
  quotaDrop: number;
  /** create() refused: full and nothing evictable (quotaRefused included) */
  full: number;
  /** of full: refused because the new flow's zone was at its quota and no flow of a zone at its quota was in reach */
  quotaRefused: number;
  /** create() refused: a tuple already belongs to a flow */
  clash: number;
  /** keys looked up (lookup, lookupBulk) / found */
  searched: number;
  found: number;
}
