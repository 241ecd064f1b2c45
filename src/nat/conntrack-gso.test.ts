/**
 * Conntrack with super-frames: seen(…, packets) counts a GSO frame as its
 * segments (wraps past 2^32 included) and its bytes as given; the TCP state
 * machine steps once with the super-frame's flags (FIN as its last segment).
 */
import { describe, expect, it } from 'vitest';
import { parseIpv4 } from '../wire/ipv4.js';
import { CT_ORIGINAL, CT_REPLY, Conntrack, TcpState } from './conntrack.js';

const A = parseIpv4('172.18.0.2');
const S = parseIpv4('93.184.216.34');
const G = parseIpv4('192.168.1.2');
const ACK = 0x10;
const FIN = 0x01;
const PSH = 0x08;

describe('Conntrack: super-frames', () => {
  it('counts a super-frame as its segments, its bytes as its IP bytes, and steps TCP once', () => {
    const ct = new Conntrack({ capacity: 8, seed: 3 });
    const f = ct.create(6, A, 40000, S, 80, S, 80, G, 50000, 0);
    ct.seen(f, CT_ORIGINAL, ACK | PSH, 40040, 10, 28);
    expect(ct.state(f)).toBe(TcpState.ESTABLISHED);
    ct.seen(f, CT_REPLY, ACK, 52, 11); // an ordinary ACK: 1 packet
    ct.seen(f, CT_REPLY, ACK | FIN, 62040, 12, 43);
    expect([ct.packets(f, CT_ORIGINAL), ct.packets(f, CT_REPLY)]).toEqual([28, 44]);
    expect([ct.bytes(f, CT_ORIGINAL), ct.bytes(f, CT_REPLY)]).toEqual([40040, 62092]);
    expect(ct.state(f)).toBe(TcpState.FIN_WAIT);
    expect(ct.assured(f)).toBe(true);
  });

  it('counts the wrap when a super-frame carries the counter past 2^32', () => {
    const ct = new Conntrack({ capacity: 4, seed: 14 });
    const f = ct.create(6, A, 1, S, 2, S, 2, G, 3, 0);
    ct.recU[(f << 4) + 14] = 0xffffffff - 4; // orig packets 5 short of wrapping
    ct.seen(f, CT_ORIGINAL, ACK, 1000, 1, 4);
    expect(ct.packets(f, CT_ORIGINAL)).toBe(2 ** 32 - 1);
    ct.seen(f, CT_ORIGINAL, ACK, 1000, 2, 45);
    expect(ct.packets(f, CT_ORIGINAL)).toBe(2 ** 32 - 1 + 45);
    ct.seen(f, CT_ORIGINAL, ACK, 1000, 3, 1);
    expect(ct.packets(f, CT_ORIGINAL)).toBe(2 ** 32 + 45);
    expect(ct.packets(f, CT_REPLY)).toBe(0);
  });
});
