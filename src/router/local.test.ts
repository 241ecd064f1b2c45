import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { fromHex, toHex } from '../wire/bytes.js';
import { FX, GATEWAY_IP, GATEWAY_MAC } from '../wire/fixtures.js';
import { macHi, macLo } from './ifaces.js';
import { arpReplyInPlace, buildArpRequest, buildRst, echoReplyInPlace } from './local.js';
import { arp, ip, parse, pkt } from './testbed.js';

describe('local replies', () => {
  it('ARP and echo replies in place match the captured ones', () => {
    const pool = new FramePool({ capacity: 4 });
    const a = pool.fromBytes(fromHex(FX.arpRequest));
    pool.lengths[a] = arpReplyInPlace(pool.bytes, pool.offsets[a], macHi(GATEWAY_MAC), macLo(GATEWAY_MAC), GATEWAY_IP);
    expect(toHex(pool.toBytes(a))).toBe(toHex(fromHex(FX.arpReply)));
    const e = pool.fromBytes(fromHex(FX.icmpEcho));
    pool.lengths[e] = echoReplyInPlace(pool.bytes, pool.offsets[e], pool.offsets[e] + 14, macHi(GATEWAY_MAC), macLo(GATEWAY_MAC), GATEWAY_IP);
    expect(toHex(pool.toBytes(e))).toBe(toHex(fromHex(FX.icmpEchoReply)));
  });

  it('builds ARP requests, broadcast or unicast', () => {
    const pool = new FramePool({ capacity: 4 });
    const h = buildArpRequest(pool, 0x020000000001, ip('10.0.0.1'), ip('10.0.0.2'), 0);
    expect(toHex(pool.toBytes(h))).toBe(toHex(arp(1, 0x020000000001, ip('10.0.0.1'), 0, ip('10.0.0.2'), 0xffffffffffff)));
    const u = buildArpRequest(pool, 0x020000000001, ip('10.0.0.1'), ip('10.0.0.2'), 0x020000000002);
    expect(toHex(pool.toBytes(u), 0, 6)).toBe('020000000002');
  });

  it('builds the RST a closed port sends (RFC 9293)', () => {
    const pool = new FramePool({ capacity: 4 });
    const c = ip('172.18.0.2');
    const g = ip('172.18.0.1');
    const syn = pool.fromBytes(pkt({ dmac: 1, smac: 2, src: c, dst: g, proto: 6, sport: 999, dport: 23, flags: 0x02 }));
    const r = parse(pool.toBytes(buildRst(pool, pool.offsets[syn] + 14)));
    expect([r.src, r.dst, r.sport, r.dport, r.seq, r.ack, r.tcpFlags, r.ttl, r.checksumsOk]).toEqual([g, c, 23, 999, 0, 1001, 0x14, 64, true]);
    const data = pool.fromBytes(pkt({ dmac: 1, smac: 2, src: c, dst: g, proto: 6, flags: 0x18, payload: new Uint8Array(10) }));
    const r2 = parse(pool.toBytes(buildRst(pool, pool.offsets[data] + 14)));
    expect([r2.seq, r2.tcpFlags, r2.totalLen]).toEqual([0, 0x04, 40]);
  });
});
