import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { ARP, ArpOp, ArpRepr, ArpView } from './arp.js';
import { CLIENT_IP, CLIENT_MAC, FX, GATEWAY_IP, GATEWAY_MAC } from './fixtures.js';

describe('ArpView', () => {
  const v = new ArpView();
  it('deconstructs a captured request', () => {
    const f = fromHex(FX.arpRequest);
    expect(v.wrap(f, 14, f.length - 14)).toBe(true);
    expect([v.htype, v.ptype, v.hlen, v.plen]).toEqual([1, 0x0800, 6, 4]);
    expect(v.oper).toBe(ArpOp.REQUEST);
    expect(v.sha).toBe(CLIENT_MAC);
    expect(v.spa).toBe(CLIENT_IP);
    expect(v.tha).toBe(0);
    expect(v.tpa).toBe(GATEWAY_IP);
  });

  it('turns a request into the reply in place', () => {
    const f = fromHex(FX.arpRequest);
    v.wrap(f, 14, f.length - 14);
    const sha = v.sha;
    const spa = v.spa;
    v.oper = ArpOp.REPLY;
    v.tha = sha;
    v.tpa = spa;
    v.sha = GATEWAY_MAC;
    v.spa = GATEWAY_IP;
    expect(toHex(f, 14)).toBe(toHex(fromHex(FX.arpReply), 14));
  });

  it('refuses truncated packets and other hardware/protocol types', () => {
    const f = fromHex(FX.arpRequest);
    expect(v.wrap(f, 14, ARP.LEN - 1)).toBe(false);
    const g = f.slice();
    g[14 + ARP.HTYPE + 1] = 6; // IEEE 802
    expect(v.wrap(g, 14, 28)).toBe(false);
    const h = f.slice();
    h[14 + ARP.PLEN] = 16;
    expect(v.wrap(h, 14, 28)).toBe(false);
  });
});

describe('ArpRepr', () => {
  it('emits the captured reply byte for byte and round-trips', () => {
    const reply = fromHex(FX.arpReply);
    const r: ArpRepr = { op: ArpOp.REPLY, sha: GATEWAY_MAC, spa: GATEWAY_IP, tha: CLIENT_MAC, tpa: CLIENT_IP };
    const out = new Uint8Array(ARP.LEN);
    expect(ArpRepr.emit(r, out, 0)).toBe(28);
    expect(toHex(out)).toBe(toHex(reply, 14));
    const v = new ArpView();
    expect(v.wrap(out, 0, out.length)).toBe(true);
    expect(ArpRepr.parse(v)).toEqual(r);
  });
});
