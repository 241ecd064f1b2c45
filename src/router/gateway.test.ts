import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DropReason } from '../dataplane/counters.js';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { ArpOp, ArpRepr } from '../wire/arp.js';
import { fromHex, toHex, w16 } from '../wire/bytes.js';
import { checksum, verifyChecksum } from '../wire/checksum.js';
import { EthernetRepr, MAC_BROADCAST } from '../wire/ethernet.js';
import { CLIENT_IP, CLIENT_MAC, FX, GATEWAY_IP, GATEWAY_MAC } from '../wire/fixtures.js';
import { IcmpRepr } from '../wire/icmp.js';
import { IPV4, IpProto, Ipv4Repr } from '../wire/ipv4.js';
import { Gateway } from './gateway.js';

const OTHER_MAC = 0x0242ac110009;
const OTHER_IP = 0xac110009; // 172.17.0.9
const SWITCH_PORT = 7;

let pool: FramePool;
let port: Port;
let gw: Gateway;

beforeEach(() => {
  pool = new FramePool({ capacity: 64 });
  port = new Port(3, 'gw0', 16);
  gw = new Gateway(pool, port, { ip: GATEWAY_IP, mac: GATEWAY_MAC });
});

afterEach(() => {
  // every frame fed in was either freed by the gateway or popped and freed by the test
  expect(pool.inUse).toBe(0);
});

/** Feed frames to the gateway; return the replies' bytes (and free them). */
function run(...frames: Uint8Array[]): Uint8Array[] {
  for (const f of frames) port.tx.push(pool.fromBytes(f, SWITCH_PORT));
  gw.process(0);
  const out: Uint8Array[] = [];
  for (let h = port.rx.pop(); h >= 0; h = port.rx.pop()) {
    expect(pool.inPort[h]).toBe(port.id);
    out.push(pool.toBytes(h));
    pool.free(h);
  }
  return out;
}

function dropsOf(reason: keyof typeof DropReason): number {
  return gw.counters.reasons[DropReason[reason]];
}

function padded(f: Uint8Array, n: number, fill = 0): Uint8Array {
  const p = new Uint8Array(n).fill(fill);
  p.set(f);
  return p;
}

/** an echo request frame from the client with `n` data bytes */
function echoRequest(n: number, dstIp = GATEWAY_IP, srcIp = CLIENT_IP): Uint8Array {
  const icmp = { type: 8, code: 0, ident: 0x77, seq: 3, payload: new Uint8Array(n).map((_, i) => i) };
  const ip: Ipv4Repr = { tos: 0, ident: 9, flagsFrag: 0x4000, ttl: 64, proto: IpProto.ICMP, src: srcIp, dst: dstIp, payloadLen: 8 + n, options: new Uint8Array(0) };
  const f = new Uint8Array(14 + 20 + 8 + n);
  EthernetRepr.emit({ dst: GATEWAY_MAC, src: CLIENT_MAC, ethertype: 0x0800, vlan: null }, f, 0);
  Ipv4Repr.emit(ip, f, 14);
  IcmpRepr.emit(icmp, f, 34);
  return f;
}

describe('Gateway: ARP', () => {
  it('answers a captured request for its IP with the exact reply', () => {
    const [reply, ...rest] = run(fromHex(FX.arpRequest));
    expect(rest).toEqual([]);
    expect(toHex(reply)).toBe(toHex(fromHex(FX.arpReply)));
    expect(gw.counters.snapshot()).toEqual({ rxPackets: 1, rxBytes: 42, txPackets: 1, txBytes: 42, drops: 0, dropReasons: {} });
    expect([port.counters.txPackets, port.counters.rxPackets]).toEqual([1, 1]);
  });

  it('trims Ethernet padding and answers unicast requests and any sender', () => {
    const [r1] = run(padded(fromHex(FX.arpRequest), 60, 0xaa));
    expect(toHex(r1)).toBe(toHex(fromHex(FX.arpReply)));
    const uni = fromHex(FX.arpRequest);
    uni.set(fromHex('02427e5c1a01'), 0);
    expect(run(uni).map((r) => toHex(r))).toEqual([toHex(fromHex(FX.arpReply))]);
    // another container asks
    const req = new Uint8Array(42);
    EthernetRepr.emit({ dst: MAC_BROADCAST, src: OTHER_MAC, ethertype: 0x0806, vlan: null }, req, 0);
    ArpRepr.emit({ op: ArpOp.REQUEST, sha: OTHER_MAC, spa: OTHER_IP, tha: 0, tpa: GATEWAY_IP }, req, 14);
    const want = new Uint8Array(42);
    EthernetRepr.emit({ dst: OTHER_MAC, src: GATEWAY_MAC, ethertype: 0x0806, vlan: null }, want, 0);
    ArpRepr.emit({ op: ArpOp.REPLY, sha: GATEWAY_MAC, spa: GATEWAY_IP, tha: OTHER_MAC, tpa: OTHER_IP }, want, 14);
    expect(run(req).map((r) => toHex(r))).toEqual([toHex(want)]);
  });

  it('ignores requests for other IPs, replies and requests to other MACs (notForUs)', () => {
    const other = fromHex(FX.arpRequest);
    other[41] = 0x09; // who-has 172.17.0.9
    const reply = fromHex(FX.arpRequest);
    reply[21] = ArpOp.REPLY;
    const elsewhere = fromHex(FX.arpRequest);
    elsewhere.set(fromHex('0242ac110009'), 0);
    expect(run(other, reply, elsewhere)).toEqual([]);
    expect(dropsOf('notForUs')).toBe(3);
    expect(gw.counters.txPackets).toBe(0);
  });

  it('drops truncated and non-Ethernet/IPv4 ARP as malformed', () => {
    const f = fromHex(FX.arpRequest);
    const ieee = f.slice();
    ieee[15] = 6;
    expect(run(f.slice(0, 41), ieee)).toEqual([]);
    expect(dropsOf('malformed')).toBe(2);
  });

  it('follows reconfigure()', () => {
    gw.reconfigure({ ip: OTHER_IP, mac: GATEWAY_MAC });
    expect(run(fromHex(FX.arpRequest))).toEqual([]);
    expect(dropsOf('notForUs')).toBe(1);
    gw.reconfigure({ ip: GATEWAY_IP, mac: GATEWAY_MAC });
    expect(run(fromHex(FX.arpRequest))).toHaveLength(1);
  });
});

describe('Gateway: ICMP echo', () => {
  it('answers a captured echo request with the exact reply and valid checksums', () => {
    const [reply, ...rest] = run(fromHex(FX.icmpEcho));
    expect(rest).toEqual([]);
    expect(toHex(reply)).toBe(toHex(fromHex(FX.icmpEchoReply)));
    expect(verifyChecksum(reply, 14, 20)).toBe(true);
    expect(verifyChecksum(reply, 34, reply.length - 34)).toBe(true);
    expect(gw.counters.txPackets).toBe(1);
    expect(gw.counters.drops).toBe(0);
  });

  it('keeps the VLAN tag of a tagged request', () => {
    gw.reconfigure({ ip: 0x0a016401, mac: GATEWAY_MAC });
    const [reply] = run(fromHex(FX.vlanIcmpEcho));
    expect(toHex(reply)).toBe(toHex(fromHex(FX.vlanIcmpEchoReply)));
    expect(verifyChecksum(reply, 18, 20)).toBe(true);
    expect(verifyChecksum(reply, 38, reply.length - 38)).toBe(true);
  });

  it('sets TTL 64, trims padding and keeps payload, id and sequence (any size)', () => {
    for (const n of [0, 1, 18, 1000]) {
      const req = echoRequest(n);
      req[22] = 3; // TTL 3
      w16(req, 24, 0);
      w16(req, 24, checksum(req, 14, 20));
      const [reply] = run(padded(req, Math.max(60, req.length)));
      expect(reply.length).toBe(req.length);
      expect(reply[22]).toBe(64);
      expect(verifyChecksum(reply, 14, 20)).toBe(true);
      expect(verifyChecksum(reply, 34, 8 + n)).toBe(true);
      expect(toHex(reply, 34, 1)).toBe('00');
      expect(toHex(reply, 38)).toBe(toHex(req, 38)); // id, seq, payload
      expect(toHex(reply, 26, 8)).toBe(toHex(req, 30, 4) + toHex(req, 26, 4));
    }
  });

  it('ignores echo requests to other IPs or MACs (notForUs)', () => {
    const tcpViaGateway = fromHex(FX.tcpSyn); // routed traffic: gateway MAC, foreign IP
    const toOtherIp = echoRequest(8, OTHER_IP);
    const flooded = fromHex(FX.icmpEcho);
    flooded.set(fromHex('0242ac110009'), 0); // unknown unicast the switch flooded
    const multicast = fromHex(FX.icmpEcho);
    multicast.set(fromHex('01005e000001'), 0);
    expect(run(tcpViaGateway, toOtherIp, flooded, multicast)).toEqual([]);
    expect(dropsOf('notForUs')).toBe(4);
  });

  it('drops bad IPv4 and ICMP checksums (badChecksum)', () => {
    const badIp = fromHex(FX.icmpEcho);
    badIp[14 + IPV4.CHECKSUM] ^= 0x10;
    const badIcmp = fromHex(FX.icmpEcho);
    badIcmp[60] ^= 0xff; // a payload byte
    expect(run(badIp, badIcmp)).toEqual([]);
    expect(dropsOf('badChecksum')).toBe(2);
  });

  it('drops what it cannot answer (unsupported)', () => {
    const ipv6 = fromHex(FX.icmpEcho);
    ipv6[12] = 0x86;
    ipv6[13] = 0xdd;
    const reply = echoRequest(4);
    reply[34] = 0; // an echo reply to us
    w16(reply, 36, 0);
    w16(reply, 36, checksum(reply, 34, 12));
    const frag = echoRequest(4);
    w16(frag, 20, 0x2000); // MF
    w16(frag, 24, 0);
    w16(frag, 24, checksum(frag, 14, 20));
    expect(run(fromHex(FX.udpDns), ipv6, reply, frag)).toEqual([]);
    expect(dropsOf('unsupported')).toBe(4);
  });

  it('drops runts and malformed IPv4/ICMP headers', () => {
    const f = fromHex(FX.icmpEcho);
    const ihl4 = f.slice();
    ihl4[14] = 0x44;
    const tooLong = f.slice(0, f.length - 1); // total length > what arrived
    const shortIcmp = f.slice(0, 14 + 24); // IP total 24: 4 bytes of ICMP
    w16(shortIcmp, 16, 24);
    w16(shortIcmp, 24, 0);
    w16(shortIcmp, 24, checksum(shortIcmp, 14, 20));
    const srcBroadcast = echoRequest(4, GATEWAY_IP, 0xffffffff);
    expect(run(f.slice(0, 10), f.slice(0, 30), ihl4, tooLong, shortIcmp, srcBroadcast)).toEqual([]);
    expect(dropsOf('runt')).toBe(1);
    expect(dropsOf('malformed')).toBe(5);
    expect(gw.counters.rxPackets).toBe(6);
    expect(gw.counters.drops).toBe(6);
  });

  it('drops echo requests longer than the MTU (oversize)', () => {
    gw = new Gateway(pool, port, { ip: GATEWAY_IP, mac: GATEWAY_MAC, mtu: 576 });
    expect(run(echoRequest(576 - 28 + 1))).toEqual([]);
    expect(dropsOf('oversize')).toBe(1);
    expect(run(echoRequest(576 - 28))).toHaveLength(1);
  });

  it('frees the reply and counts ringFull when port.rx is full', () => {
    const small = new Port(4, 'gw1', 2);
    const g = new Gateway(pool, small, { ip: GATEWAY_IP, mac: GATEWAY_MAC });
    for (let i = 0; i < 2; i++) small.tx.push(pool.fromBytes(fromHex(FX.icmpEcho)));
    g.process(0);
    small.tx.push(pool.fromBytes(fromHex(FX.arpRequest)));
    g.process(0);
    expect(g.counters.txPackets).toBe(2);
    expect(g.counters.reasons[DropReason.ringFull]).toBe(1);
    expect(pool.inUse).toBe(2);
    for (let h = small.rx.pop(); h >= 0; h = small.rx.pop()) pool.free(h);
  });

  it('handles a mixed batch without leaking frames', () => {
    const batch = [FX.arpRequest, FX.icmpEcho, FX.udpDns, FX.tcpSyn, FX.icmpEcho, FX.vlanIcmpEcho].map((x) => fromHex(x));
    const out = run(...batch);
    expect(out.map((r) => toHex(r))).toEqual([FX.arpReply, FX.icmpEchoReply, FX.icmpEchoReply].map((x) => toHex(fromHex(x))));
    expect(gw.counters.rxPackets).toBe(6);
    expect(gw.counters.txPackets).toBe(3);
    expect(gw.counters.drops).toBe(3);
    expect(gw.counters.snapshot().dropReasons).toEqual({ notForUs: 2, unsupported: 1 });
  });
});
