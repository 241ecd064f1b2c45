/**
 * Cold helpers of Conntrack: a flow as a plain object (FlowInfo) and the
 * `conntrack -L` text form of a list of flows:
 *
 *   tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=10.0.0.1 sport=40000 dport=80 packets=3 bytes=180 src=10.0.0.1 dst=192.168.1.2 sport=80 dport=40000 packets=2 bytes=120 [ASSURED] mark=0 use=1
 *   udp      17 29 src=… dst=… sport=… dport=… packets=1 bytes=60 [UNREPLIED] src=… … mark=0 use=1
 *   icmp     1 29 src=… dst=… type=8 code=0 id=7 packets=1 bytes=84 src=… dst=… type=0 code=0 id=7 …
 *
 * (protocol name padded to 8, protocol number, seconds left, TCP state,
 * original tuple with its counters, [UNREPLIED] when never answered, reply
 * tuple with its counters, [ASSURED], mark, use.)
 */
import type { Conntrack } from './conntrack.js';
import { TCP_STATE_NAMES } from './tcp-state.js';

export interface FlowSide {
  /** dotted quad */
  src: string;
  dst: string;
  /** ports; for ICMP both are the identifier */
  sport: number;
  dport: number;
  packets: number;
  bytes: number;
}

export interface FlowInfo {
  /** flow id */
  id: number;
  proto: number;
  /** "tcp", "udp", "icmp" or the number */
  protoName: string;
  /** TCP state name; undefined for other protocols */
  state?: string;
  /** whole seconds until expiry */
  timeoutSec: number;
  orig: FlowSide;
  reply: FlowSide;
  /** seen in the reply direction */
  replied: boolean;
  assured: boolean;
  mark: number;
  /** conntrack zone (the router's: ingress iface + 1; 0 = none) */
  zone: number;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };

function ip(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function side(ct: Conntrack, f: number, dir: number): FlowSide {
  return {
    src: ip(ct.srcIp(f, dir)),
    dst: ip(ct.dstIp(f, dir)),
    sport: ct.srcPort(f, dir),
    dport: ct.dstPort(f, dir),
    packets: ct.packets(f, dir),
    bytes: ct.bytes(f, dir),
  };
}

export function flowInfo(ct: Conntrack, f: number, now: number): FlowInfo {
  const proto = ct.proto(f);
  const info: FlowInfo = {
    id: f,
    proto,
    protoName: PROTO_NAMES[proto] ?? String(proto),
    timeoutSec: Math.max(0, Math.floor((ct.expires(f) - now) / 1000)),
    orig: side(ct, f, 0),
    reply: side(ct, f, 1),
    replied: ct.replied(f),
    assured: ct.assured(f),
    mark: ct.mark[f],
    zone: ct.zone(f),
  };
  if (proto === 6) info.state = TCP_STATE_NAMES[ct.state(f)];
  return info;
}

function sideText(fi: FlowInfo, s: FlowSide, dir: number): string {
  const l4 =
    fi.proto === 1
      ? `type=${dir === 0 ? 8 : 0} code=0 id=${s.sport}`
      : fi.proto === 6 || fi.proto === 17
        ? `sport=${s.sport} dport=${s.dport}`
        : '';
  return `src=${s.src} dst=${s.dst} ${l4 ? l4 + ' ' : ''}packets=${s.packets} bytes=${s.bytes}`;
}

/** The `conntrack -L` line of one flow (without the newline). */
export function formatFlow(fi: FlowInfo): string {
  const parts = [fi.protoName.padEnd(8), String(fi.proto), String(fi.timeoutSec)];
  if (fi.state !== undefined) parts.push(fi.state);
  parts.push(sideText(fi, fi.orig, 0));
  if (!fi.replied) parts.push('[UNREPLIED]');
  parts.push(sideText(fi, fi.reply, 1));
  if (fi.assured) parts.push('[ASSURED]');
  parts.push(`mark=${fi.mark}`, 'use=1');
  return parts.join(' ');
}

/** One `conntrack -L` line per flow (no summary line). */
export function formatConntrack(list: FlowInfo[]): string {
  let out = '';
  for (const fi of list) out += formatFlow(fi) + '\n';
  return out;
}
