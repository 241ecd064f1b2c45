import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { csumUpdate16 } from './checksum.js';
import { FX } from './fixtures.js';
import { ICMP, IcmpRepr, IcmpType, IcmpView } from './icmp.js';
import { Ipv4View } from './ipv4.js';

describe('IcmpView', () => {
  const ip = new Ipv4View();
  const v = new IcmpView();

  it('deconstructs a captured echo request', () => {
    const f = fromHex(FX.icmpEcho);
    expect(ip.wrap(f, 14, f.length - 14)).toBe(true);
    expect(v.wrap(f, ip.payloadOff, ip.payloadLen)).toBe(true);
    expect([v.type, v.code, v.checksum, v.ident, v.seq]).toEqual([IcmpType.ECHO_REQUEST, 0, 0xf51b, 0x1c2b, 1]);
    expect(v.rest).toBe(0x1c2b0001);
    expect(v.payloadOff).toBe(42);
    expect(v.payloadLen).toBe(56);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('reads a tagged echo request', () => {
    const f = fromHex(FX.vlanIcmpEcho);
    expect(ip.wrap(f, 18, f.length - 18)).toBe(true);
    expect(v.wrap(f, ip.payloadOff, ip.payloadLen)).toBe(true);
    expect([v.ident, v.seq, v.payloadLen, v.verifyChecksum()]).toEqual([0x42, 7, 32, true]);
  });

  it('turns a request into a reply (incremental and full checksum agree)', () => {
    const f = fromHex(FX.icmpEcho);
    ip.wrap(f, 14, f.length - 14);
    v.wrap(f, ip.payloadOff, ip.payloadLen);
    v.checksum = csumUpdate16(v.checksum, IcmpType.ECHO_REQUEST << 8, IcmpType.ECHO_REPLY << 8);
    v.type = IcmpType.ECHO_REPLY;
    expect(toHex(f, 34)).toBe(toHex(fromHex(FX.icmpEchoReply), 34));
    v.fillChecksum();
    expect(v.checksum).toBe(0xfd1b);
  });

  it('refuses a message shorter than its header', () => {
    const f = fromHex(FX.icmpEcho);
    expect(v.wrap(f, 34, ICMP.HLEN - 1)).toBe(false);
    expect(v.wrap(f, 34, ICMP.HLEN)).toBe(true);
  });

  it('accesses the next-hop MTU of a frag-needed message', () => {
    const b = new Uint8Array(8);
    v.wrap(b, 0, 8);
    v.type = IcmpType.DEST_UNREACH;
    v.code = 4;
    v.mtu = 1450;
    v.fillChecksum();
    expect(toHex(b)).toBe('0304' + ((~(0x0304 + 1450) & 0xffff).toString(16)) + '000005aa');
  });
});

describe('IcmpRepr', () => {
  it('constructs the captured echo request and round-trips', () => {
    const f = fromHex(FX.icmpEcho);
    const r: IcmpRepr = { type: 8, code: 0, ident: 0x1c2b, seq: 1, payload: f.slice(42) };
    const out = new Uint8Array(IcmpRepr.len(r));
    expect(IcmpRepr.emit(r, out, 0)).toBe(64);
    expect(toHex(out)).toBe(toHex(f, 34));
    const v = new IcmpView();
    expect(v.wrap(out, 0, out.length)).toBe(true);
    expect(IcmpRepr.parse(v)).toEqual(r);
  });
});
