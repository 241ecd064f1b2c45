import { describe, expect, it } from 'vitest';
import { parseUplink } from './uplink.js';

describe('--uplink', () => {
  it('parses tap and iface forms', () => {
    expect(parseUplink('tap:up0,ip=192.0.2.2/24,gw=192.0.2.1')).toEqual({ kind: 'tap', name: 'up0', ip: 0xc0000202, prefixLen: 24, gateway: 0xc0000201 });
    expect(parseUplink('iface:veth1,ip=10.9.0.5/16')).toEqual({ kind: 'iface', name: 'veth1', ip: 0x0a090005, prefixLen: 16, gateway: 0 });
  });
  it.each([
    ['up0', /expected tap:NAME/],
    ['tun:up0,ip=1.2.3.4/24', /expected tap:NAME/],
    ['tap:,ip=1.2.3.4/24', /interface name/],
    ['tap:waytoolonginterfacename,ip=1.2.3.4/24', /interface name/],
    ['tap:up0', /ip=CIDR is required/],
    ['tap:up0,ip=1.2.3.4', /needs a prefix length/],
    ['tap:up0,ip=1.2.3.4/33', /prefix length/],
    ['tap:up0,ip=1.2.3.400/24', /uplink address/],
    ['tap:up0,ip=1.2.3.4/24,gw=5.6.7.8', /not on the uplink subnet/],
    ['tap:up0,ip=1.2.3.4/24,gw=1.2.3.4', /same/],
    ['tap:up0,ip=1.2.3.4/24,mtu=9000', /unknown key "mtu"/],
    ['iface:lo,ip=1.2.3.4/24', /lo cannot/],
  ])('rejects %s', (spec, msg) => {
    expect(() => parseUplink(spec)).toThrow(msg);
  });
});
