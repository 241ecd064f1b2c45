import { describe, expect, it } from 'vitest';
import { Port } from '../dataplane/port.js';
import { IfaceTable, KIND_UPLINK, pubIndex } from './ifaces.js';
import { ip } from './testbed.js';

function table(): { t: IfaceTable; a: number; b: number; up: number } {
  const t = new IfaceTable();
  const a = t.add({ kind: 'network', port: new Port(1, 'a'), side: 'switch', ip: ip('172.18.0.1'), prefixLen: 16, mac: 1, mtu: 1500 });
  const b = t.add({ kind: 'network', port: new Port(2, 'b'), side: 'switch', ip: ip('172.18.5.1'), prefixLen: 24, mac: 2, mtu: 1400, internal: true });
  const up = t.add({ kind: 'uplink', port: new Port(3, 'up'), side: 'device', ip: ip('192.168.1.2'), prefixLen: 24, mac: 3, mtu: 1500, gateway: ip('192.168.1.1') });
  return { t, a, b, up };
}

describe('IfaceTable', () => {
  it('routes by longest prefix, then the default via the uplink', () => {
    const { t, a, b, up } = table();
    expect([a, b, up]).toEqual([0, 1, 2]);
    expect(t.route(ip('172.18.0.9'))).toBe(a);
    expect(t.route(ip('172.18.5.9'))).toBe(b);
    expect(t.route(ip('192.168.1.77'))).toBe(up);
    expect(t.route(ip('8.8.8.8'))).toBe(up);
    expect(t.nextHop(up, ip('8.8.8.8')) >>> 0).toBe(ip('192.168.1.1'));
    expect(t.nextHop(up, ip('192.168.1.77')) >>> 0).toBe(ip('192.168.1.77'));
    expect(t.nextHop(a, ip('8.8.8.8'))).toBe(0);
    t.remove(up);
    expect(t.route(ip('8.8.8.8'))).toBe(-1);
    expect(t.defaultIface).toBe(-1);
  });

  it('knows its addresses, subnets and broadcasts; sides pick the rings', () => {
    const { t, a, b, up } = table();
    expect(t.localIface(ip('172.18.5.1'))).toBe(b);
    expect(t.localIface(ip('172.18.5.2'))).toBe(-1);
    expect(t.isSubnetBroadcast(a, ip('172.18.255.255'))).toBe(true);
    expect(t.isSubnetBroadcast(b, ip('172.18.5.255'))).toBe(true);
    expect(t.isSubnetBroadcast(a, ip('172.18.5.255'))).toBe(false);
    expect(t.inSubnet(a, ip('172.19.0.1'))).toBe(false);
    expect([t.internal[a], t.internal[b], t.kind[up]]).toEqual([0, 1, KIND_UPLINK]);
    expect(t.inRing[a]).toBe(t.port[a]!.tx);
    expect(t.outRing[up]).toBe(t.port[up]!.tx);
    expect(t.deviceSide[a]).toBe(1);
  });

  it('reuses ids, refuses a port twice and bad configs', () => {
    const { t, a } = table();
    const p = t.port[a]!;
    expect(() => t.add({ kind: 'host', port: p, side: 'device', ip: 1, prefixLen: 30, mac: 9, mtu: 1500 })).toThrow(/already/);
    expect(() => t.add({ kind: 'host', port: new Port(9, 'x'), side: 'device', ip: 1, prefixLen: 33, mac: 9, mtu: 1500 })).toThrow();
    expect(() => t.add({ kind: 'host', port: new Port(9, 'x'), side: 'device', ip: 1, prefixLen: 30, mac: 9, mtu: 20 })).toThrow();
    t.remove(a);
    expect(t.add({ kind: 'host', port: new Port(9, 'x'), side: 'device', ip: 1, prefixLen: 30, mac: 9, mtu: 1500 })).toBe(a);
  });

  it('publishes ports per protocol; another target on a taken port throws', () => {
    const { t } = table();
    t.publish({ proto: 6, hostPort: 80, targetIp: ip('172.18.0.2'), targetPort: 8000 });
    expect(t.pubPort[pubIndex(6, 80)]).toBe(8000);
    expect(t.pubPort[pubIndex(17, 80)]).toBe(-1);
    expect(() => t.publish({ proto: 6, hostPort: 80, targetIp: ip('172.18.0.3'), targetPort: 8000 })).toThrow(/already published/);
    expect(() => pubIndex(6, 0)).toThrow();
    t.unpublish({ proto: 6, hostPort: 80, targetIp: 0, targetPort: 0 });
    expect(t.pubPort[pubIndex(6, 80)]).toBe(-1);
  });
});
