/**
 * DHCP over BOOTP (RFC 2131, options RFC 2132), Ethernet hardware only.
 *
 *   op(1) htype(1) hlen(1) hops(1) xid(4) secs(2) flags(2)
 *   ciaddr(4) yiaddr(4) siaddr(4) giaddr(4) chaddr(16) sname(64) file(128)
 *   magic cookie 63 82 53 63 (4), then options: code(1) len(1) data(len),
 *   except PAD (0) and END (255), which are one byte.
 *
 * DhcpView.wrap(bytes, off, len) takes the UDP payload and checks, once:
 * the fixed part and cookie fit and the cookie is DHCP's; then it walks the
 * options (and the `file`/`sname` fields when option 52 says they are
 * overloaded) and records the ones a server needs in plain fields. It fails
 * when an option runs past the end of its field or a known option has the
 * wrong length; options ending without END are accepted (as most servers
 * do). A repeated option keeps its first occurrence (no RFC 3396
 * concatenation). No accessor reads out of bounds after a successful wrap;
 * nothing allocates.
 *
 * putOpt*() write one option at `o` and return the offset after it (hot
 * reply building, no allocation). DhcpRepr is the cold parse/emit pair for
 * tests and tools: emit writes options in a fixed order (53 54 50 51 58 59
 * 1 3 6 61 55 57 12 56, unknown ones after) and pads the message with zeros
 * to `minLen` (300, the BOOTP minimum that relays and old clients expect).
 */
import { u16, u32, w16, w32 } from './bytes.js';
import { mac48, writeMac48 } from './ethernet.js';

export const BOOTP = {
  OP: 0,
  HTYPE: 1,
  HLEN: 2,
  HOPS: 3,
  XID: 4,
  SECS: 8,
  FLAGS: 10,
  CIADDR: 12,
  YIADDR: 16,
  SIADDR: 20,
  GIADDR: 24,
  CHADDR: 28,
  SNAME: 44,
  FILE: 108,
  COOKIE: 236,
  OPTIONS: 240,
  /** fixed part + cookie */
  MIN_LEN: 240,
  /** RFC 951 message size; replies are padded to it */
  PAD_TO: 300,
} as const;
export const DHCP_MAGIC = 0x63825363;
export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** the B bit of `flags`: the client wants replies broadcast */
export const BOOTP_BROADCAST = 0x8000;
export const BootpOp = { REQUEST: 1, REPLY: 2 } as const;
export const DhcpMsgType = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;
export const DhcpOpt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MSG_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST: 55,
  MESSAGE: 56,
  MAX_MSG_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  END: 255,
} as const;
const O = DhcpOpt;

export class DhcpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  /** UDP payload length given to wrap */
  len = 0;
  // ---- options found by wrap (0 / −1 / length 0 when absent)
  msgType = 0;
  requestedIp = 0;
  serverId = 0;
  /** seconds, −1 when absent */
  leaseTime = -1;
  maxMsgSize = 0;
  /** option 52: 1 = file, 2 = sname, 3 = both hold options */
  overload = 0;
  /** absolute offset / length of option data */
  clientIdOff = 0;
  clientIdLen = 0;
  paramsOff = 0;
  paramsLen = 0;
  hostnameOff = 0;
  hostnameLen = 0;
  /** absolute offset just past the END option of the options field (or its end) */
  optionsEnd = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    if (len < BOOTP.MIN_LEN || u32(bytes, off + BOOTP.COOKIE) !== DHCP_MAGIC) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.msgType = this.requestedIp = this.serverId = this.maxMsgSize = this.overload = 0;
    this.leaseTime = -1;
    this.clientIdOff = this.clientIdLen = this.paramsOff = this.paramsLen = this.hostnameOff = this.hostnameLen = 0;
    const end = this.scan(off + BOOTP.OPTIONS, off + len, true);
    if (end < 0) return false;
    this.optionsEnd = end;
    if ((this.overload & 1) !== 0 && this.scan(off + BOOTP.FILE, off + BOOTP.COOKIE, false) < 0) return false;
    if ((this.overload & 2) !== 0 && this.scan(off + BOOTP.SNAME, off + BOOTP.FILE, false) < 0) return false;
    return true;
  }

  /** Walk options in [p, end); −1 when malformed, else the offset after END (or `end`). */
  private scan(p: number, end: number, main: boolean): number {
    const b = this.bytes;
    while (p < end) {
      const code = b[p];
      if (code === O.PAD) {
        p++;
        continue;
      }
      if (code === O.END) return p + 1;
      if (p + 2 > end) return -1;
      const n = b[p + 1];
      const d = p + 2;
      if (d + n > end) return -1;
      switch (code) {
        case O.MSG_TYPE:
          if (n !== 1) return -1;
          if (this.msgType === 0) this.msgType = b[d];
          break;
        case O.REQUESTED_IP:
          if (n !== 4) return -1;
          if (this.requestedIp === 0) this.requestedIp = u32(b, d);
          break;
        case O.SERVER_ID:
          if (n !== 4) return -1;
          if (this.serverId === 0) this.serverId = u32(b, d);
          break;
        case O.LEASE_TIME:
          if (n !== 4) return -1;
          if (this.leaseTime < 0) this.leaseTime = u32(b, d);
          break;
        case O.MAX_MSG_SIZE:
          if (n !== 2) return -1;
          if (this.maxMsgSize === 0) this.maxMsgSize = u16(b, d);
          break;
        case O.OVERLOAD:
          if (n !== 1 || b[d] > 3) return -1;
          if (main) this.overload = b[d]; // only the options field may say so
          break;
        case O.CLIENT_ID:
          if (n < 1) return -1;
          if (this.clientIdLen === 0) (this.clientIdOff = d), (this.clientIdLen = n);
          break;
        case O.PARAM_REQUEST:
          if (this.paramsLen === 0) (this.paramsOff = d), (this.paramsLen = n);
          break;
        case O.HOSTNAME:
          if (this.hostnameLen === 0) (this.hostnameOff = d), (this.hostnameLen = n);
          break;
      }
      p = d + n;
    }
    return end;
  }

  get op(): number {
    return this.bytes[this.off + BOOTP.OP];
  }
  get htype(): number {
    return this.bytes[this.off + BOOTP.HTYPE];
  }
  get hlen(): number {
    return this.bytes[this.off + BOOTP.HLEN];
  }
  get hops(): number {
    return this.bytes[this.off + BOOTP.HOPS];
  }
  get xid(): number {
    return u32(this.bytes, this.off + BOOTP.XID);
  }
  get secs(): number {
    return u16(this.bytes, this.off + BOOTP.SECS);
  }
  get flags(): number {
    return u16(this.bytes, this.off + BOOTP.FLAGS);
  }
  get broadcast(): boolean {
    return (this.flags & BOOTP_BROADCAST) !== 0;
  }
  get ciaddr(): number {
    return u32(this.bytes, this.off + BOOTP.CIADDR);
  }
  get yiaddr(): number {
    return u32(this.bytes, this.off + BOOTP.YIADDR);
  }
  get siaddr(): number {
    return u32(this.bytes, this.off + BOOTP.SIADDR);
  }
  get giaddr(): number {
    return u32(this.bytes, this.off + BOOTP.GIADDR);
  }
  /** the first six octets of chaddr as a 48-bit MAC (meaningful when htype 1, hlen 6) */
  get chaddr(): number {
    return mac48(this.bytes, this.off + BOOTP.CHADDR);
  }
}

// ------------------------------------------------------------ option writers

export function putOptU8(b: Uint8Array, o: number, code: number, v: number): number {
  b[o] = code;
  b[o + 1] = 1;
  b[o + 2] = v;
  return o + 3;
}

export function putOptU16(b: Uint8Array, o: number, code: number, v: number): number {
  b[o] = code;
  b[o + 1] = 2;
  w16(b, o + 2, v);
  return o + 4;
}

/** A 4-byte option: an address or a time in seconds. */
export function putOptU32(b: Uint8Array, o: number, code: number, v: number): number {
  b[o] = code;
  b[o + 1] = 4;
  w32(b, o + 2, v);
  return o + 6;
}

/** A list of addresses (at most 63); an empty list writes nothing. */
export function putOptIps(b: Uint8Array, o: number, code: number, ips: readonly number[]): number {
  const n = ips.length;
  if (n === 0) return o;
  b[o] = code;
  b[o + 1] = n * 4;
  for (let i = 0; i < n; i++) w32(b, o + 2 + 4 * i, ips[i]);
  return o + 2 + n * 4;
}

/** Option data copied from src[srcOff .. srcOff+len) (len ≤ 255; src may be `b`). */
export function putOptBytes(b: Uint8Array, o: number, code: number, src: Uint8Array, srcOff: number, len: number): number {
  if (src === b) b.copyWithin(o + 2, srcOff, srcOff + len);
  else for (let i = 0; i < len; i++) b[o + 2 + i] = src[srcOff + i];
  b[o] = code;
  b[o + 1] = len;
  return o + 2 + len;
}

// --------------------------------------------------------------------- Repr

export interface DhcpRepr {
  op: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** 48-bit MAC */
  chaddr: number;
  messageType?: number;
  requestedIp?: number;
  serverId?: number;
  leaseTime?: number;
  renewalTime?: number;
  rebindingTime?: number;
  subnetMask?: number;
  router?: number[];
  dns?: number[];
  clientId?: Uint8Array;
  paramRequestList?: number[];
  maxMessageSize?: number;
  hostname?: string;
  message?: string;
  /** options not named above, in order */
  other?: Array<{ code: number; data: Uint8Array }>;
}

const latin1 = (d: Uint8Array): string => String.fromCharCode(...d);
const ips = (d: Uint8Array): number[] => Array.from({ length: d.length >>> 2 }, (_, i) => u32(d, 4 * i));
const str = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** Options of a wrapped view as (code, data) pairs, in order, file/sname overloads last (cold). */
export function dhcpOptions(v: DhcpView): Array<{ code: number; data: Uint8Array }> {
  const out: Array<{ code: number; data: Uint8Array }> = [];
  const walk = (p: number, end: number): void => {
    const b = v.bytes;
    while (p < end && b[p] !== O.END) {
      if (b[p] === O.PAD) {
        p++;
        continue;
      }
      out.push({ code: b[p], data: b.slice(p + 2, p + 2 + b[p + 1]) });
      p += 2 + b[p + 1];
    }
  };
  walk(v.off + BOOTP.OPTIONS, v.off + v.len);
  if (v.overload & 1) walk(v.off + BOOTP.FILE, v.off + BOOTP.COOKIE);
  if (v.overload & 2) walk(v.off + BOOTP.SNAME, v.off + BOOTP.FILE);
  return out;
}

export const DhcpRepr = {
  parse(v: DhcpView): DhcpRepr {
    const r: DhcpRepr = {
      op: v.op,
      hops: v.hops,
      xid: v.xid,
      secs: v.secs,
      flags: v.flags,
      ciaddr: v.ciaddr,
      yiaddr: v.yiaddr,
      siaddr: v.siaddr,
      giaddr: v.giaddr,
      chaddr: v.chaddr,
    };
    const seen = new Set<number>();
    for (const { code, data } of dhcpOptions(v)) {
      if (seen.has(code)) continue;
      seen.add(code);
      switch (code) {
        case O.MSG_TYPE: r.messageType = data[0]; break;
        case O.REQUESTED_IP: r.requestedIp = u32(data, 0); break;
        case O.SERVER_ID: r.serverId = u32(data, 0); break;
        case O.LEASE_TIME: r.leaseTime = u32(data, 0); break;
        case O.RENEWAL_TIME: r.renewalTime = u32(data, 0); break;
        case O.REBINDING_TIME: r.rebindingTime = u32(data, 0); break;
        case O.SUBNET_MASK: r.subnetMask = u32(data, 0); break;
        case O.ROUTER: r.router = ips(data); break;
        case O.DNS: r.dns = ips(data); break;
        case O.CLIENT_ID: r.clientId = data; break;
        case O.PARAM_REQUEST: r.paramRequestList = Array.from(data); break;
        case O.MAX_MSG_SIZE: r.maxMessageSize = u16(data, 0); break;
        case O.HOSTNAME: r.hostname = latin1(data); break;
        case O.MESSAGE: r.message = latin1(data); break;
        case O.OVERLOAD: break; // a property of this encoding only
        default: (r.other ??= []).push({ code, data });
      }
    }
    return r;
  },

  /** Bytes emit() writes before padding. */
  len(r: DhcpRepr): number {
    let n = BOOTP.OPTIONS + 1;
    for (const [, d] of reprOptions(r)) n += 2 + d.length;
    return n;
  },

  /** Writes the message at `off`, zero-padded to minLen (default 300); returns its length. */
  emit(r: DhcpRepr, b: Uint8Array, off: number, minLen: number = BOOTP.PAD_TO): number {
    b[off + BOOTP.OP] = r.op;
    b[off + BOOTP.HTYPE] = 1;
    b[off + BOOTP.HLEN] = 6;
    b[off + BOOTP.HOPS] = r.hops;
    w32(b, off + BOOTP.XID, r.xid);
    w16(b, off + BOOTP.SECS, r.secs);
    w16(b, off + BOOTP.FLAGS, r.flags);
    w32(b, off + BOOTP.CIADDR, r.ciaddr);
    w32(b, off + BOOTP.YIADDR, r.yiaddr);
    w32(b, off + BOOTP.SIADDR, r.siaddr);
    w32(b, off + BOOTP.GIADDR, r.giaddr);
    b.fill(0, off + BOOTP.CHADDR, off + BOOTP.COOKIE);
    writeMac48(b, off + BOOTP.CHADDR, r.chaddr);
    w32(b, off + BOOTP.COOKIE, DHCP_MAGIC);
    let o = off + BOOTP.OPTIONS;
    for (const [code, d] of reprOptions(r)) {
      if (d.length > 255) throw new Error(`DHCP option ${code} longer than 255 bytes`);
      o = putOptBytes(b, o, code, d, 0, d.length);
    }
    b[o++] = O.END;
    const n = o - off;
    if (n >= minLen) return n;
    b.fill(0, o, off + minLen);
    return minLen;
  },
};

/** The options of r as (code, data), in emit order. */
function reprOptions(r: DhcpRepr): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  const be = (v: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (v >>> (8 * (n - 1 - i))) & 0xff);
  const add = (code: number, d: Uint8Array | undefined): void => {
    if (d !== undefined) out.push([code, d]);
  };
  const addIps = (code: number, l: number[] | undefined): void => {
    if (l !== undefined && l.length > 0) out.push([code, Uint8Array.from(l.flatMap((ip) => Array.from(be(ip, 4))))]);
  };
  add(O.MSG_TYPE, r.messageType === undefined ? undefined : be(r.messageType, 1));
  for (const [code, v] of [
    [O.SERVER_ID, r.serverId],
    [O.REQUESTED_IP, r.requestedIp],
    [O.LEASE_TIME, r.leaseTime],
    [O.RENEWAL_TIME, r.renewalTime],
    [O.REBINDING_TIME, r.rebindingTime],
    [O.SUBNET_MASK, r.subnetMask],
  ] as const) add(code, v === undefined ? undefined : be(v, 4));
  addIps(O.ROUTER, r.router);
  addIps(O.DNS, r.dns);
  add(O.CLIENT_ID, r.clientId);
  add(O.PARAM_REQUEST, r.paramRequestList && Uint8Array.from(r.paramRequestList));
  add(O.MAX_MSG_SIZE, r.maxMessageSize === undefined ? undefined : be(r.maxMessageSize, 2));
  add(O.HOSTNAME, r.hostname === undefined ? undefined : str(r.hostname));
  add(O.MESSAGE, r.message === undefined ? undefined : str(r.message));
  for (const x of r.other ?? []) add(x.code, x.data);
  return out;
}
