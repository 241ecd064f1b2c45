/**
 * Uniform counters: rxPackets rxBytes txPackets txBytes drops, and a count
 * per drop reason. Reasons are a fixed list so counting a drop is one
 * typed-array increment, no strings on the hot path.
 *
 * rxSegments/txSegments count what the wire carries: 1 per ordinary frame,
 * and for a super-frame (GSO, see pool.ts) the number of segments it stands
 * for (segmentsOf() in ./segments-count.ts). rxPackets/txPackets keep
 * counting frames as handled (a super-frame is one).
 */
export const DropReason = {
  runt: 0, // shorter than an Ethernet header
  oversize: 1, // longer than the port's MTU allows
  badSrcMac: 2, // source MAC is multicast/broadcast or zero
  ringFull: 3, // the next element's ring was full
  poolEmpty: 4, // no frame left to clone/allocate
  macTableFull: 5, // could not learn a source (table full)
  malformed: 6, // a header with impossible lengths/fields
  badChecksum: 7,
  notForUs: 8, // addressed to the gateway's MAC but nothing to answer
  noRoute: 9,
  hairpin: 10, // destination is the ingress port
  txError: 11, // the device refused the write
  filtered: 12, // policy (isolation, icc, …)
  portDown: 13, // the destination port is gone
  ttlExceeded: 14,
  unsupported: 15, // a protocol/operation this element does not handle
  badGso: 16, // a super-frame whose GSO annotations do not match its bytes (gsoCheck)
} as const;
export type DropReasonName = keyof typeof DropReason;
export const DROP_REASON_NAMES = Object.keys(DropReason) as DropReasonName[];

export class Counters {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  /** wire segments: 1 per frame, gsoSegments per super-frame */
  rxSegments = 0;
  txSegments = 0;
  drops = 0;
  readonly reasons = new Float64Array(DROP_REASON_NAMES.length);

  drop(reason: number): void {
    this.drops++;
    this.reasons[reason]++;
  }

  /** Cold: a plain object for the API (only non-zero reasons listed). */
  snapshot(): CounterSnapshot {
    const dropReasons: Record<string, number> = {};
    for (let i = 0; i < this.reasons.length; i++) if (this.reasons[i] > 0) dropReasons[DROP_REASON_NAMES[i]] = this.reasons[i];
    return {
      rxPackets: this.rxPackets,
      rxBytes: this.rxBytes,
      txPackets: this.txPackets,
      txBytes: this.txBytes,
      rxSegments: this.rxSegments,
      txSegments: this.txSegments,
      drops: this.drops,
      dropReasons,
    };
  }

  reset(): void {
    this.rxPackets = this.rxBytes = this.txPackets = this.txBytes = this.rxSegments = this.txSegments = this.drops = 0;
    this.reasons.fill(0);
  }
}

export interface CounterSnapshot {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** wire segments (1 per frame, gsoSegments per super-frame) */
  rxSegments: number;
  txSegments: number;
  drops: number;
  dropReasons: Record<string, number>;
}
