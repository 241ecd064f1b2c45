import { describe, expect, it } from 'vitest';
import { fromHex, toHex, u16, w16 } from './bytes.js';
import { csumUpdate16 } from './checksum.js';
import { CLIENT_IP, FX } from './fixtures.js';
import { Ipv4View } from './ipv4.js';
import { TCP, TcpFlags, TcpRepr, TcpView, parseTcpOptions } from './tcp.js';

const SYN_OPTS = '020405b40402080a8f1e2d3c0000000001030307';
const SERVER = 0x5db8d822; // 93.184.216.34

describe('TcpView', () => {
  const ip = new Ipv4View();
  const v = new TcpView();

  it('deconstructs a captured SYN with options', () => {
    const f = fromHex(FX.tcpSyn);
    expect(ip.wrap(f, 14, f.length - 14)).toBe(true);
    expect(v.wrap(f, ip.payloadOff, ip.payloadLen)).toBe(true);
    expect([v.srcPort, v.dstPort, v.seq, v.ack]).toEqual([45678, 80, 0x3a1c5e2f, 0]);
    expect([v.dataOffset, v.headerLen, v.flags, v.window, v.checksum, v.urgent]).toEqual([10, 40, TcpFlags.SYN, 64240, 0x63bc, 0]);
    expect(v.optionsOff).toBe(54);
    expect(v.optionsLen).toBe(20);
    expect(v.payloadLen).toBe(0);
    expect(toHex(f, v.optionsOff, v.optionsLen)).toBe(SYN_OPTS);
    expect(v.verifyChecksum(ip.src, ip.dst)).toBe(true);
    expect(v.verifyChecksum(ip.src, ip.dst ^ 1)).toBe(false);
    expect(parseTcpOptions(f.slice(54, 74))).toEqual({ mss: 1460, sackPermitted: true, tsval: 0x8f1e2d3c, tsecr: 0, wscale: 7 });
  });

  it('clamps the MSS in place with an incremental checksum update', () => {
    const f = fromHex(FX.tcpSyn);
    ip.wrap(f, 14, f.length - 14);
    v.wrap(f, ip.payloadOff, ip.payloadLen);
    const o = v.mssOffset();
    expect(o).toBe(56);
    v.checksum = csumUpdate16(v.checksum, u16(f, o), 1410);
    w16(f, o, 1410);
    expect(v.verifyChecksum(ip.src, ip.dst)).toBe(true);
  });

  it('finds no MSS when absent or when the options are malformed', () => {
    const b = new Uint8Array(28);
    TcpRepr.emit({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TcpFlags.SYN, window: 0, urgent: 0, options: fromHex('01010303'), payload: new Uint8Array(4) }, b, 0);
    v.wrap(b, 0, 28);
    expect(v.mssOffset()).toBe(-1);
    b[22] = 0x04; // kind 4 … but length 0x01 < 2
    b[23] = 0x01;
    expect(v.mssOffset()).toBe(-1);
    expect(() => parseTcpOptions(fromHex('0401'))).toThrow(/malformed/);
  });

  it('refuses bad data offsets and truncated segments', () => {
    const f = fromHex(FX.tcpSyn);
    expect(v.wrap(f, 34, 19)).toBe(false); // truncated
    expect(v.wrap(f, 34, 39)).toBe(false); // options cut short (data offset 10 → 40 bytes)
    const g = f.slice();
    g[34 + TCP.DATA_OFF] = 0x40; // data offset 4 < 5
    expect(v.wrap(g, 34, 40)).toBe(false);
    g[34 + TCP.DATA_OFF] = 0xf0; // 60 bytes > 40
    expect(v.wrap(g, 34, 40)).toBe(false);
  });
});

describe('TcpRepr', () => {
  it('constructs the captured SYN byte for byte and round-trips', () => {
    const f = fromHex(FX.tcpSyn);
    const r: TcpRepr = {
      srcPort: 45678,
      dstPort: 80,
      seq: 0x3a1c5e2f,
      ack: 0,
      flags: TcpFlags.SYN,
      window: 64240,
      urgent: 0,
      options: fromHex(SYN_OPTS),
      payload: new Uint8Array(0),
    };
    const out = new Uint8Array(TcpRepr.len(r));
    expect(TcpRepr.emit(r, out, 0, CLIENT_IP, SERVER)).toBe(40);
    expect(toHex(out)).toBe(toHex(f, 34));
    const v = new TcpView();
    expect(v.wrap(out, 0, out.length)).toBe(true);
    expect(TcpRepr.parse(v)).toEqual(r);
  });

  it('pads options and carries a payload', () => {
    const r: TcpRepr = {
      srcPort: 80,
      dstPort: 45678,
      seq: 1,
      ack: 0x3a1c5e30,
      flags: TcpFlags.PSH | TcpFlags.ACK,
      window: 509,
      urgent: 0,
      options: fromHex('020405b4'.slice(0, 6)), // 3 bytes → padded to 4
      payload: new TextEncoder().encode('HTTP/1.1 200 OK\r\n'),
    };
    const out = new Uint8Array(TcpRepr.len(r));
    expect(TcpRepr.emit(r, out, 0, SERVER, CLIENT_IP)).toBe(24 + 17);
    const v = new TcpView();
    expect(v.wrap(out, 0, out.length)).toBe(true);
    expect([v.headerLen, v.payloadLen, v.payloadOff]).toEqual([24, 17, 24]);
    expect(v.verifyChecksum(SERVER, CLIENT_IP)).toBe(true);
    expect(TcpRepr.parse(v).options).toEqual(fromHex('02040500'));
  });
});
