import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { CLIENT_IP, FX, GATEWAY_IP } from './fixtures.js';
import { Ipv4View } from './ipv4.js';
import { UDP, UdpRepr, UdpView, udpChecksum } from './udp.js';

const DNS_QUERY = '1a2b01000001000000000000076578616d706c6503636f6d0000010001';

describe('UdpView', () => {
  const ip = new Ipv4View();
  const v = new UdpView();

  it('deconstructs a captured DNS query', () => {
    const f = fromHex(FX.udpDns);
    expect(ip.wrap(f, 14, f.length - 14)).toBe(true);
    expect(v.wrap(f, ip.payloadOff, ip.payloadLen)).toBe(true);
    expect([v.srcPort, v.dstPort, v.length, v.checksum]).toEqual([41234, 53, 37, 0x1c9e]);
    expect(v.payloadOff).toBe(42);
    expect(v.payloadLen).toBe(29);
    expect(toHex(f, v.payloadOff, v.payloadLen)).toBe(DNS_QUERY);
    expect(v.verifyChecksum(ip.src, ip.dst)).toBe(true);
    expect(v.verifyChecksum(ip.src, ip.dst + 1)).toBe(false);
    v.checksum = 0; // "no checksum"
    expect(v.verifyChecksum(ip.src, ip.dst + 1)).toBe(true);
    v.fillChecksum(ip.src, ip.dst);
    expect(v.checksum).toBe(0x1c9e);
  });

  it('refuses bad length fields', () => {
    const f = fromHex(FX.udpDns);
    expect(v.wrap(f, 34, 7)).toBe(false); // truncated header
    expect(v.wrap(f, 34, 36)).toBe(false); // length 37 > 36 available
    const g = f.slice();
    g[34 + UDP.LENGTH + 1] = 7; // length < 8
    expect(v.wrap(g, 34, 37)).toBe(false);
  });

  it('sends a computed zero checksum as 0xffff', () => {
    // find a source port that makes the sum all-ones
    const b = new Uint8Array(8);
    const r = { srcPort: 0, dstPort: 53, payload: new Uint8Array(0) };
    UdpRepr.emit(r, b, 0);
    const want = udpChecksum(b, 0, 8, 0x0a000001, 0x0a000002);
    const port = 0xffff - (~want & 0xffff); // adding this makes the folded sum 0xffff
    UdpRepr.emit({ ...r, srcPort: port }, b, 0, 0x0a000001, 0x0a000002);
    expect(toHex(b, 6, 2)).toBe('ffff');
    v.wrap(b, 0, 8);
    expect(v.verifyChecksum(0x0a000001, 0x0a000002)).toBe(true);
  });
});

describe('UdpRepr', () => {
  it('constructs the captured datagram and round-trips', () => {
    const f = fromHex(FX.udpDns);
    const r: UdpRepr = { srcPort: 41234, dstPort: 53, payload: fromHex(DNS_QUERY) };
    const out = new Uint8Array(UdpRepr.len(r));
    expect(UdpRepr.emit(r, out, 0, CLIENT_IP, GATEWAY_IP)).toBe(37);
    expect(toHex(out)).toBe(toHex(f, 34));
    const v = new UdpView();
    expect(v.wrap(out, 0, out.length)).toBe(true);
    expect(UdpRepr.parse(v)).toEqual(r);
    UdpRepr.emit(r, out, 0);
    expect(v.checksum).toBe(0);
  });
});
