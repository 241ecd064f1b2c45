/**
 * The TCP connection-tracking state machine (a reduced form of netfilter's
 * nf_conntrack_proto_tcp `tcp_conntracks` table, without sequence-window
 * checks and without the simultaneous-open state S2).
 *
 * A segment is classified by its flags (in this order of precedence):
 *   RST → rst;  SYN+ACK → synack;  SYN → syn;  FIN → fin;  ACK → ack;  else none.
 * The next state is looked up by (direction of the segment, class, state).
 * "·" keeps the current state (netfilter's sIG "ignore" and sIV "invalid":
 * the flow is left as it is; the packet is still counted and the timeout of
 * the unchanged state refreshed).
 *
 *   ORIGINAL   NONE  SYN_S  SYN_R  EST   FIN_W  CL_W   L_ACK  T_W    CLOSE
 *   syn        SYN_S SYN_S  ·      ·     ·      ·      ·      SYN_S* SYN_S*
 *   synack     ·     ·      ·      ·     ·      ·      ·      ·      ·
 *   fin        ·     ·      FIN_W  FIN_W L_ACK  L_ACK  L_ACK  T_W    CLOSE
 *   ack        EST†  ·      EST    EST   CL_W   CL_W   T_W    T_W    CLOSE
 *   rst        ·     CLOSE  CLOSE  CLOSE CLOSE  CLOSE  CLOSE  CLOSE  CLOSE
 *
 *   REPLY      NONE  SYN_S  SYN_R  EST   FIN_W  CL_W   L_ACK  T_W    CLOSE
 *   syn        ·     ·      ·      ·     ·      ·      ·      ·      ·
 *   synack     ·     SYN_R  ·      ·     ·      ·      ·      ·      ·
 *   fin        ·     ·      FIN_W  FIN_W L_ACK  L_ACK  L_ACK  T_W    CLOSE
 *   ack        ·     ·      SYN_R  EST   CL_W   CL_W   T_W    T_W    CLOSE
 *   rst        ·     CLOSE  CLOSE  CLOSE CLOSE  CLOSE  CLOSE  CLOSE  CLOSE
 *
 *   (class "none" keeps the state in both directions.)
 *   *  a new SYN in TIME_WAIT/CLOSE reopens the tuple: Conntrack clears the
 *      replied/assured flags and the accounting (netfilter kills the old
 *      entry and creates a new one; the NAT mapping stays ours).
 *   †  an ACK with no SYN seen picks up a connection already running (as
 *      netfilter does with nf_conntrack_tcp_loose=1, its default).
 *
 * So a normal life is: SYN → SYN_SENT; SYN+ACK (reply) → SYN_RECV; ACK
 * (original) → ESTABLISHED; first FIN → FIN_WAIT; its ACK → CLOSE_WAIT;
 * second FIN → LAST_ACK; last ACK → TIME_WAIT; RST anywhere → CLOSE.
 * Each state has its own timeout (Conntrack's Timeouts, netfilter's
 * defaults); NONE uses the CLOSE timeout.
 */

export const TcpState = {
  NONE: 0,
  SYN_SENT: 1,
  SYN_RECV: 2,
  ESTABLISHED: 3,
  FIN_WAIT: 4,
  CLOSE_WAIT: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
  CLOSE: 8,
} as const;

export const TCP_STATE_NAMES: readonly string[] = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
];
export const TCP_NSTATES = 9;

/** Segment classes (rows of the table). */
export const TcpClass = { SYN: 0, SYNACK: 1, FIN: 2, ACK: 3, RST: 4, NONE: 5 } as const;
const NCLASS = 6;

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

/** Class of a segment from its flag byte. */
export function tcpClass(flags: number): number {
  if ((flags & RST) !== 0) return TcpClass.RST;
  if ((flags & SYN) !== 0) return (flags & ACK) !== 0 ? TcpClass.SYNACK : TcpClass.SYN;
  if ((flags & FIN) !== 0) return TcpClass.FIN;
  if ((flags & ACK) !== 0) return TcpClass.ACK;
  return TcpClass.NONE;
}

const SS = 1, SR = 2, ES = 3, FW = 4, CW = 5, LA = 6, TW = 7, CL = 8; // prettier-ignore
/** "keep the current state" */
const K = 0xff;

// rows: class; columns: state NONE..CLOSE
const ORIGINAL: number[][] = [
  /* syn    */ [SS, SS, K, K, K, K, K, SS, SS],
  /* synack */ [K, K, K, K, K, K, K, K, K],
  /* fin    */ [K, K, FW, FW, LA, LA, LA, TW, CL],
  /* ack    */ [ES, K, ES, ES, CW, CW, TW, TW, CL],
  /* rst    */ [K, CL, CL, CL, CL, CL, CL, CL, CL],
  /* none   */ [K, K, K, K, K, K, K, K, K],
];
const REPLY: number[][] = [
  /* syn    */ [K, K, K, K, K, K, K, K, K],
  /* synack */ [K, SR, K, K, K, K, K, K, K],
  /* fin    */ [K, K, FW, FW, LA, LA, LA, TW, CL],
  /* ack    */ [K, K, SR, ES, CW, CW, TW, TW, CL],
  /* rst    */ [K, CL, CL, CL, CL, CL, CL, CL, CL],
  /* none   */ [K, K, K, K, K, K, K, K, K],
];

/**
 * Flat transition table: TCP_NEXT[(dir * 6 + class) * 9 + state] is the next
 * state, with "keep" already resolved to the state itself.
 */
export const TCP_NEXT: Uint8Array = (() => {
  const t = new Uint8Array(2 * NCLASS * TCP_NSTATES);
  [ORIGINAL, REPLY].forEach((tab, dir) =>
    tab.forEach((row, cls) =>
      row.forEach((next, st) => {
        t[(dir * NCLASS + cls) * TCP_NSTATES + st] = next === K ? st : next;
      }),
    ),
  );
  return t;
})();

/** Next state for a segment with `flags` travelling in `dir` (0 original, 1 reply). */
export function tcpNext(state: number, dir: number, flags: number): number {
  return TCP_NEXT[(dir * NCLASS + tcpClass(flags)) * TCP_NSTATES + state];
}

/** True when this transition reopens a finished connection (SYN in TIME_WAIT/CLOSE). */
export function tcpReopens(state: number, next: number): boolean {
  return next === SS && state >= TW;
}
