/**
 * The ARP cache's configuration, counters and host interface (types only);
 * see arp-cache.ts, which re-exports them.
 */

/** Event counters of the cache (cold reads). */
export interface ArpCacheCounters {
  /** a new entry found the whole dynamic table full (an entry of the biggest iface was evicted) */
  full: number;
  /** a new entry found its iface at its quota (one of that iface's own entries was evicted) */
  quotaEvicted: number;
  /** setStatic refused: the static area is full */
  staticFull: number;
  /** ARP claims for a permanent entry with another MAC (ignored) */
  conflicts: number;
}

export interface ArpCacheOptions {
  /** learned (dynamic) entries, all ifaces together (default 1024) */
  capacity?: number;
  /** permanent entries (setStatic), counted apart (default 1024) */
  staticCapacity?: number;
  /** dynamic entries one iface may hold (default max(capacity/8, 64), at most capacity) */
  ifaceQuota?: number;
  seed?: number;
  /** frames queued per unresolved entry (default 4) */
  queueLen?: number;
  /** confirmation lifetime (default 30 000 ms, Linux base_reachable_time) */
  reachableMs?: number;
  /** request retransmit interval (default 1 000 ms) */
  retransMs?: number;
  /** requests before giving up (default 3) */
  maxProbes?: number;
  /** STALE entries unused this long are removed (default 60 000 ms) */
  gcMs?: number;
}

/** What the cache asks of its owner from tick(). */
export interface ArpHost {
  /** send an ARP request for `ip` on `iface`; `mac` = 0: broadcast, else unicast to it */
  arpRequest(iface: number, ip: number, mac: number): void;
  /** a frame queued for an entry that failed to resolve: the host frees it (and may report it) */
  arpUnresolved(h: number, iface: number): void;
}

export interface ArpRow {
  iface: number;
  ip: number;
  mac: number;
  state: string;
}
