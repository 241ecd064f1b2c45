import { describe, expect, it } from 'vitest';
import {
  AddressAllocator,
  DEFAULT_POOLS,
  allocateAddress,
  checkRequestedAddress,
  cidrContains,
  cidrLast,
  cidrsOverlap,
  countAssignable,
  formatCidr,
  formatIp,
  formatMac,
  gatewayMac,
  macFromIp,
  macToNumber,
  parseCidr,
  parseIp,
  parseMac,
  pickDefaultPool,
  resolveIpamConfig,
  type ExistingSubnet,
} from './ipam.js';

const ip = (s: string): number => parseIp(s);
const net = (name: string, cidr: string): ExistingSubnet => ({ name, subnet: parseCidr(cidr) });

describe('addresses', () => {
  it('parses and formats dotted quads as uint32', () => {
    expect(ip('172.17.0.2')).toBe(0xac110002);
    expect(ip('255.255.255.255')).toBe(0xffffffff);
    expect(formatIp(0xffffffff)).toBe('255.255.255.255');
    expect(formatIp(ip('10.1.2.3'))).toBe('10.1.2.3');
  });
  it.each([
    ['abc', 'invalid IP address "abc": not an IPv4 address (expected a.b.c.d)'],
    ['300.1.1.1', 'invalid IP address "300.1.1.1": not an IPv4 address (expected a.b.c.d)'],
    ['10.1', 'invalid IP address "10.1": not an IPv4 address (expected a.b.c.d)'],
    ['010.1.1.1', 'invalid IP address "010.1.1.1": not an IPv4 address (expected a.b.c.d)'],
    ['::1', 'invalid IP address "::1": IPv6 is not supported'],
    ['', 'invalid IP address "": empty'],
  ])('rejects %j', (s, msg) => {
    expect(() => parseIp(s)).toThrow(msg);
  });
});

describe('parseCidr', () => {
  it('parses a prefix', () => {
    expect(parseCidr('10.1.0.0/16')).toEqual({ base: 0x0a010000, prefix: 16 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ base: 0, prefix: 0 });
    expect(formatCidr(parseCidr('192.168.16.0/20'))).toBe('192.168.16.0/20');
    expect(formatIp(cidrLast(parseCidr('10.1.0.0/16')))).toBe('10.1.255.255');
  });
  it.each([
    ['10.0.0.0/33', 'invalid subnet "10.0.0.0/33": prefix length must be a number from 0 to 32'],
    ['10.0.0.0/-1', 'invalid subnet "10.0.0.0/-1": prefix length must be a number from 0 to 32'],
    ['10.0.0.0/', 'invalid subnet "10.0.0.0/": prefix length must be a number from 0 to 32'],
    ['10.0.0.0/08', 'invalid subnet "10.0.0.0/08": prefix length must be a number from 0 to 32'],
    ['300.1.1.1/24', 'invalid subnet "300.1.1.1/24": 300.1.1.1 is not a valid IPv4 address'],
    ['abc', 'invalid subnet "abc": expected an IPv4 address and a prefix length, like 10.1.0.0/24'],
    ['10.0.0.0', 'invalid subnet "10.0.0.0": missing prefix length (like 10.0.0.0/24)'],
    ['fd00::/64', 'invalid subnet "fd00::/64": IPv6 is not supported'],
    ['172.20.0.5/16', 'invalid subnet "172.20.0.5/16": host bits are set, it should be 172.20.0.0/16'],
  ])('rejects %j', (s, msg) => {
    expect(() => parseCidr(s)).toThrow(msg);
  });
  it('names the flag in the error', () => {
    expect(() => parseCidr('x', 'ip-range')).toThrow(/^invalid ip-range "x"/);
  });
  it('overlap and containment', () => {
    expect(cidrsOverlap(parseCidr('10.1.0.0/16'), parseCidr('10.1.5.0/24'))).toBe(true);
    expect(cidrsOverlap(parseCidr('10.1.5.0/24'), parseCidr('10.1.0.0/16'))).toBe(true);
    expect(cidrsOverlap(parseCidr('10.1.0.0/24'), parseCidr('10.1.1.0/24'))).toBe(false);
    expect(cidrContains(parseCidr('10.1.0.0/24'), ip('10.1.0.255'))).toBe(true);
    expect(cidrContains(parseCidr('10.1.0.0/24'), ip('10.1.1.0'))).toBe(false);
    expect(cidrContains(parseCidr('0.0.0.0/0'), ip('255.1.1.1'))).toBe(true);
  });
});

describe('default pools', () => {
  it('are 172.17-31/16 then 192.168.0.0/16 in /20 steps', () => {
    expect(DEFAULT_POOLS.slice(0, 3).map(formatCidr)).toEqual(['172.17.0.0/16', '172.18.0.0/16', '172.19.0.0/16']);
    expect(formatCidr(DEFAULT_POOLS[14]!)).toBe('172.31.0.0/16');
    expect(DEFAULT_POOLS.slice(15, 18).map(formatCidr)).toEqual(['192.168.0.0/20', '192.168.16.0/20', '192.168.32.0/20']);
    expect(formatCidr(DEFAULT_POOLS[DEFAULT_POOLS.length - 1]!)).toBe('192.168.240.0/20');
    expect(DEFAULT_POOLS).toHaveLength(31);
  });
  it('picks the first pool overlapping no network', () => {
    expect(formatCidr(pickDefaultPool([net('bridge', '172.17.0.0/16')]))).toBe('172.18.0.0/16');
    expect(formatCidr(pickDefaultPool([net('bridge', '172.17.0.0/16'), net('a', '172.18.5.0/24')]))).toBe('172.19.0.0/16');
    // a user network covering a pool (and more) makes every overlapped pool taken
    expect(formatCidr(pickDefaultPool([net('big', '172.16.0.0/12')]))).toBe('192.168.0.0/20');
    expect(formatCidr(pickDefaultPool([net('big', '172.16.0.0/12'), net('x', '192.168.1.0/24')]))).toBe('192.168.16.0/20');
  });
  it('says so when none is left', () => {
    expect(() => pickDefaultPool([net('a', '172.16.0.0/12'), net('b', '192.168.0.0/16')])).toThrow(
      'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network',
    );
  });
});

describe('resolveIpamConfig', () => {
  const bridge = [net('bridge', '172.17.0.0/16')];
  it('defaults: next pool, first host as gateway', () => {
    const c = resolveIpamConfig({}, bridge);
    expect(formatCidr(c.subnet)).toBe('172.18.0.0/16');
    expect(formatIp(c.gateway)).toBe('172.18.0.1');
    expect(c.ipRange).toBeNull();
  });
  it('takes subnet, gateway and ip-range', () => {
    const c = resolveIpamConfig({ subnet: '10.1.0.0/16', gateway: '10.1.255.254', ipRange: '10.1.3.0/24' }, bridge);
    expect(formatIp(c.gateway)).toBe('10.1.255.254');
    expect(formatCidr(c.ipRange!)).toBe('10.1.3.0/24');
  });
  it.each([
    [{ subnet: '10.0.0.0/33' }, 'invalid subnet "10.0.0.0/33": prefix length must be a number from 0 to 32'],
    [{ subnet: '10.0.0.0/31' }, 'invalid subnet "10.0.0.0/31": prefix length must be 30 or less (no room for a gateway and containers)'],
    [{ subnet: '10.0.0.0/24', gateway: '10.1.0.1' }, 'gateway 10.1.0.1 is not in subnet 10.0.0.0/24'],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0.0' }, 'gateway 10.0.0.0 is the network address of subnet 10.0.0.0/24'],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0.255' }, 'gateway 10.0.0.255 is the broadcast address of subnet 10.0.0.0/24'],
    [{ subnet: '10.0.0.0/24', gateway: 'x' }, 'invalid gateway "x": not an IPv4 address (expected a.b.c.d)'],
    [{ subnet: '10.1.0.0/16', ipRange: '10.2.0.0/24' }, 'ip-range 10.2.0.0/24 is not inside subnet 10.1.0.0/16'],
    [{ subnet: '10.1.0.0/24', ipRange: '10.1.0.0/16' }, 'ip-range 10.1.0.0/16 is not inside subnet 10.1.0.0/24'],
    [{ subnet: '10.1.0.0/16', ipRange: '10.1.0.7/24' }, 'invalid ip-range "10.1.0.7/24": host bits are set, it should be 10.1.0.0/24'],
    [{ gateway: '10.0.0.1' }, 'every ip-range or gateway must have a corresponding subnet'],
    [{ ipRange: '10.0.0.0/24' }, 'every ip-range or gateway must have a corresponding subnet'],
    [{ subnet: '172.17.5.0/24' }, 'subnet 172.17.5.0/24 overlaps with network "bridge" (172.17.0.0/16)'],
    [{ subnet: '172.0.0.0/8' }, 'subnet 172.0.0.0/8 overlaps with network "bridge" (172.17.0.0/16)'],
    [
      { subnet: '10.0.0.0/24', gateway: '10.0.0.1', ipRange: '10.0.0.1/32' },
      'ip-range 10.0.0.1/32 leaves no address for containers in subnet 10.0.0.0/24',
    ],
  ])('rejects %j', (req, msg) => {
    expect(() => resolveIpamConfig(req, bridge)).toThrow(msg);
  });
  it('rejects an overlap with a user network, naming it', () => {
    expect(() => resolveIpamConfig({ subnet: '10.1.0.0/24' }, [...bridge, net('foo', '10.1.0.0/16')])).toThrow(
      'subnet 10.1.0.0/24 overlaps with network "foo" (10.1.0.0/16)',
    );
  });
});

describe('allocation', () => {
  const cfg = resolveIpamConfig({ subnet: '10.1.0.0/24' }, []);
  it('hands out addresses in order, skipping the gateway', () => {
    const a = new AddressAllocator(cfg);
    expect([a.allocate(), a.allocate(), a.allocate()].map(formatIp)).toEqual(['10.1.0.2', '10.1.0.3', '10.1.0.4']);
  });
  it('reuses the lowest released address', () => {
    const a = new AddressAllocator(cfg, [ip('10.1.0.2'), ip('10.1.0.3'), ip('10.1.0.4')]);
    expect(a.release(ip('10.1.0.3'))).toBe(true);
    expect(a.release(ip('10.1.0.3'))).toBe(false);
    expect(formatIp(a.allocate())).toBe('10.1.0.3');
    expect(formatIp(a.allocate())).toBe('10.1.0.5');
    expect(a.taken().map(formatIp)).toEqual(['10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5']);
  });
  it('skips a gateway placed anywhere and never hands out network/broadcast', () => {
    const c = resolveIpamConfig({ subnet: '10.1.0.0/30', gateway: '10.1.0.2' }, []);
    expect(countAssignable(c)).toBe(1);
    const a = new AddressAllocator(c, [], 'tiny');
    expect(formatIp(a.allocate())).toBe('10.1.0.1');
    expect(() => a.allocate()).toThrow("no available IPv4 addresses on this network's address pools: tiny (10.1.0.0/30)");
  });
  it('allocates from the ip-range, including its first address', () => {
    const c = resolveIpamConfig({ subnet: '10.1.0.0/16', ipRange: '10.1.3.0/30' }, []);
    expect(formatIp(c.gateway)).toBe('10.1.0.1');
    const a = new AddressAllocator(c);
    expect([a.allocate(), a.allocate(), a.allocate(), a.allocate()].map(formatIp)).toEqual([
      '10.1.3.0',
      '10.1.3.1',
      '10.1.3.2',
      '10.1.3.3',
    ]);
    expect(a.free).toBe(0);
    expect(() => a.allocate()).toThrow(/no available IPv4 addresses.*\(10\.1\.3\.0\/30\)/);
    // an explicit address outside the range but inside the subnet is fine
    expect(formatIp(a.reserve(ip('10.1.200.9')))).toBe('10.1.200.9');
  });
  it('an ip-range at the start of the subnet skips the network address and gateway', () => {
    const c = resolveIpamConfig({ subnet: '10.1.0.0/24', ipRange: '10.1.0.0/29' }, []);
    expect(formatIp(allocateAddress(c, new Set()))).toBe('10.1.0.2');
    expect(countAssignable(c)).toBe(6);
  });
  it('checks explicit addresses', () => {
    const taken = new Set([ip('10.1.0.2')]);
    const check = (a: string): void => checkRequestedAddress(cfg, ip(a), taken, 'foo');
    expect(() => check('10.9.9.9')).toThrow('address 10.9.9.9 is not in subnet 10.1.0.0/24 of network "foo"');
    expect(() => check('10.1.0.0')).toThrow('address 10.1.0.0 is the network address of subnet 10.1.0.0/24');
    expect(() => check('10.1.0.255')).toThrow('address 10.1.0.255 is the broadcast address of subnet 10.1.0.0/24');
    expect(() => check('10.1.0.1')).toThrow('address 10.1.0.1 is the gateway of network "foo"');
    expect(() => check('10.1.0.2')).toThrow('address 10.1.0.2 is already in use on network "foo"');
    expect(() => check('10.1.0.3')).not.toThrow();
  });
  it('reserve leaves the allocator unchanged on error', () => {
    const a = new AddressAllocator(cfg, [ip('10.1.0.2')]);
    expect(() => a.reserve(ip('10.1.0.1'))).toThrow(/gateway/);
    expect(a.taken().map(formatIp)).toEqual(['10.1.0.2']);
    a.reserve(ip('10.1.0.3'));
    expect(a.isTaken(ip('10.1.0.3'))).toBe(true);
    expect(formatIp(a.allocate())).toBe('10.1.0.4');
  });
});

describe('MACs', () => {
  it("follow Docker's 02:42 + IPv4 scheme", () => {
    expect(macFromIp(ip('172.17.0.2'))).toBe('02:42:ac:11:00:02');
    expect(macFromIp(ip('10.255.0.16'))).toBe('02:42:0a:ff:00:10');
  });
  it('gateway MAC is stable, locally administered and unicast', () => {
    const id = 'a1b2c3' + '0'.repeat(58);
    expect(gatewayMac(id)).toBe('02:75:6e:a1:b2:c3');
    expect(gatewayMac(id)).toBe(gatewayMac(id));
    const first = macToNumber(gatewayMac(id)) / 2 ** 40;
    expect(first & 2).toBe(2);
    expect(first & 1).toBe(0);
    expect(() => gatewayMac('xyz')).toThrow('invalid network id "xyz"');
  });
  it('parses user MACs', () => {
    expect(parseMac('02:42:AC:11:00:09')).toBe('02:42:ac:11:00:09');
    expect(parseMac('02-42-ac-11-00-09')).toBe('02:42:ac:11:00:09');
    expect(() => parseMac('02:42:ac:11:00')).toThrow('invalid MAC address "02:42:ac:11:00": expected six hex octets like 02:42:ac:11:00:02');
    expect(() => parseMac('02:42-ac:11:00:09')).toThrow(/expected six hex octets/);
    expect(() => parseMac('zz:42:ac:11:00:09')).toThrow(/expected six hex octets/);
    expect(() => parseMac('01:00:5e:00:00:01')).toThrow('invalid MAC address "01:00:5e:00:00:01": multicast/broadcast address cannot be assigned');
    expect(() => parseMac('ff:ff:ff:ff:ff:ff')).toThrow(/multicast\/broadcast/);
    expect(() => parseMac('00:00:00:00:00:00')).toThrow(/all-zero/);
  });
  it('numeric round trip', () => {
    expect(macToNumber('02:42:ac:11:00:02')).toBe(0x0242ac110002);
    expect(formatMac(0x0242ac110002)).toBe('02:42:ac:11:00:02');
    expect(formatMac(0xffffffffffff)).toBe('ff:ff:ff:ff:ff:ff');
  });
});
