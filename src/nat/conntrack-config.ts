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
}

export interface ConntrackCounters {
  inserted: number;
  /** remove() calls that removed a flow */
  deleted: number;
  /** removed by tick() (or reclaimed by create()) past their timeout */
  expired: number;
  /** unreplied flows dropped to make room */
  evicted: number;
  /** create() refused: full and nothing evictable */
  full: number;
  /** create() refused: a tuple already belongs to a flow */
  clash: number;
  /** keys looked up (lookup, lookupBulk) / found */
  searched: number;
  found: number;
}
