import { describe, expect, it } from 'vitest';
import {
  HOST_MODE_PORTS_WARNING,
  State,
  type ConnectOptions,
  type StateJSON,
  networkIcc,
  networkIpam,
  networkMtu,
  outboundEndpoint,
  parsePublish,
  randomId,
} from './model.js';
import { formatIp } from '../services/ipam.js';

/** Deterministic ids: 64 hex chars, distinct first 12 chars. */
function ids(): () => string {
  let n = 0;
  return () => {
    n++;
    const h = n.toString(16).padStart(4, '0');
    return `${h}${'ab'.repeat(4)}${h}`.padEnd(64, 'c');
  };
}

function mk(): State {
  return new State({ newId: ids(), now: () => new Date('2026-01-02T03:04:05.000Z') });
}

const snap = (s: State): string => JSON.stringify(s.toJSON());

/** The call throws exactly `msg` and the state is untouched. */
function rejects(s: State, fn: () => unknown, msg: string): void {
  const before = snap(s);
  expect(fn).toThrow(msg);
  try {
    fn();
  } catch (e) {
    expect((e as Error).message).toBe(msg);
  }
  expect(snap(s)).toBe(before);
}

describe('built-ins', () => {
  it('has bridge, host and none', () => {
    const s = mk();
    const [bridge, host, none] = s.networks();
    expect(bridge).toMatchObject({ name: 'bridge', driver: 'bridge', subnet: '172.17.0.0/16', gateway: '172.17.0.1', builtin: true, scope: 'local' });
    expect(bridge!.options['com.docker.network.bridge.default_bridge']).toBe('true');
    expect(host).toMatchObject({ name: 'host', driver: 'host', subnet: null, builtin: true });
    expect(none).toMatchObject({ name: 'none', driver: 'null', subnet: null, builtin: true });
    for (const n of s.networks()) expect(n.id).toMatch(/^[0-9a-f]{64}$/);
    expect(bridge!.gatewayMac).toMatch(/^02:75:6e:/);
  });
  it('random ids are 64 hex chars', () => {
    expect(randomId()).toMatch(/^[0-9a-f]{64}$/);
    expect(randomId()).not.toBe(randomId());
  });
});

describe('networks', () => {
  it('creates with defaults from the pools in order', () => {
    const s = mk();
    const a = s.createNetwork({ name: 'a' });
    const b = s.createNetwork({ name: 'b' });
    expect([a.subnet, a.gateway, b.subnet]).toEqual(['172.18.0.0/16', '172.18.0.1', '172.19.0.0/16']);
    expect(a).toMatchObject({ driver: 'bridge', internal: false, attachable: false, builtin: false, userSubnet: false, created: '2026-01-02T03:04:05.000Z' });
  });
  it('skips pools taken by user subnets', () => {
    const s = mk();
    s.createNetwork({ name: 'x', subnet: '172.18.0.0/24' });
    s.createNetwork({ name: 'y', subnet: '172.19.128.0/17' });
    expect(s.createNetwork({ name: 'z' }).subnet).toBe('172.20.0.0/16');
  });
  it('keeps flags, options and labels', () => {
    const s = mk();
    const n = s.createNetwork({
      name: 'back',
      subnet: '10.5.0.0/24',
      gateway: '10.5.0.254',
      ipRange: '10.5.0.128/25',
      internal: true,
      attachable: true,
      options: { 'com.docker.network.driver.mtu': '1400', 'com.docker.network.bridge.enable_icc': 'false' },
      labels: { tier: 'db' },
    });
    expect(n).toMatchObject({ subnet: '10.5.0.0/24', gateway: '10.5.0.254', ipRange: '10.5.0.128/25', internal: true, attachable: true, userSubnet: true });
    expect(networkMtu(n)).toBe(1400);
    expect(networkIcc(n)).toBe(false);
    expect(networkMtu(s.findNetwork('bridge'))).toBe(1500);
    expect(networkIcc(s.findNetwork('bridge'))).toBe(true);
    expect(n.labels).toEqual({ tier: 'db' });
    expect(formatIp(networkIpam(n).gateway)).toBe('10.5.0.254');
  });
  it.each([
    [{ name: 'cn', subnet: '10.0.0.0/33' }, 'invalid subnet "10.0.0.0/33": prefix length must be a number from 0 to 32'],
    [{ name: 'cn', subnet: '300.1.1.1/24' }, 'invalid subnet "300.1.1.1/24": 300.1.1.1 is not a valid IPv4 address'],
    [{ name: 'cn', subnet: 'abc' }, 'invalid subnet "abc": expected an IPv4 address and a prefix length, like 10.1.0.0/24'],
    [{ name: 'cn', subnet: '10.0.0.0/24', gateway: '10.1.0.1' }, 'gateway 10.1.0.1 is not in subnet 10.0.0.0/24'],
    [{ name: 'cn', subnet: '10.3.0.0/16', ipRange: '10.4.0.0/24' }, 'ip-range 10.4.0.0/24 is not inside subnet 10.3.0.0/16'],
    [{ name: 'cn', subnet: '10.1.0.0/24' }, 'subnet 10.1.0.0/24 overlaps with network "foo" (10.1.0.0/16)'],
    [{ name: 'cn', subnet: '172.17.0.0/16' }, 'subnet 172.17.0.0/16 overlaps with network "bridge" (172.17.0.0/16)'],
    [{ name: 'foo' }, 'network with name foo already exists'],
    [{ name: 'bridge' }, 'operation is not permitted on predefined bridge network'],
    [{ name: 'none' }, 'operation is not permitted on predefined none network'],
    [{ name: 'default' }, 'operation is not permitted on predefined default network'],
    [{ name: '' }, 'network name is required'],
    [{ name: '-x' }, 'invalid network name "-x": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ name: 'a b' }, 'invalid network name "a b": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ name: 'cn', driver: 'overlay' }, 'driver overlay is not supported yet'],
    [{ name: 'cn', driver: 'macvlan' }, 'driver macvlan is not supported yet'],
    [{ name: 'cn', driver: 'ipvlan' }, 'driver ipvlan is not supported yet'],
    [{ name: 'cn', driver: 'host' }, 'only one instance of "host" network is allowed'],
    [{ name: 'cn', driver: 'foo' }, 'driver "foo" not found (available: bridge, overlay, macvlan, ipvlan)'],
    [{ name: 'cn', options: { 'com.docker.network.driver.mtu': '67' } }, 'invalid option com.docker.network.driver.mtu="67": must be an integer from 68 to 65535'],
    [{ name: 'cn', options: { 'com.docker.network.driver.mtu': '65536' } }, 'invalid option com.docker.network.driver.mtu="65536": must be an integer from 68 to 65535'],
    [{ name: 'cn', options: { 'com.docker.network.driver.mtu': '1500.5' } }, 'invalid option com.docker.network.driver.mtu="1500.5": must be an integer from 68 to 65535'],
    [{ name: 'cn', options: { 'com.docker.network.bridge.enable_icc': 'no' } }, 'invalid option com.docker.network.bridge.enable_icc="no": must be true or false'],
    [{ name: 'cn', options: { 'com.docker.network.bridge.default_bridge': 'true' } }, 'option com.docker.network.bridge.default_bridge is reserved for the default bridge network'],
    [{ name: 'cn', options: { '': 'x' } }, 'invalid option key ""'],
    [{ name: 'cn', gateway: '10.0.0.1' }, 'every ip-range or gateway must have a corresponding subnet'],
  ])('rejects %j and leaves state unchanged', (spec, msg) => {
    const s = mk();
    s.createNetwork({ name: 'foo', subnet: '10.1.0.0/16' });
    rejects(s, () => s.createNetwork(spec), msg);
  });
  it('accepts other drivers once they are supported', () => {
    const s = new State({ newId: ids(), supportedDrivers: ['bridge', 'overlay'] });
    expect(s.createNetwork({ name: 'ov', driver: 'overlay' }).driver).toBe('overlay');
  });
  it('overlay: swarm pool 10.0.0.0/24 upwards, MTU 1450 (1418 encrypted), options checked', () => {
    const s = new State({ newId: ids(), supportedDrivers: ['bridge', 'overlay'] });
    const a = s.createNetwork({ name: 'ov', driver: 'overlay', scope: 'swarm' });
    expect([a.subnet, a.gateway, a.scope]).toEqual(['10.0.0.0/24', '10.0.0.1', 'swarm']);
    expect(networkMtu(a)).toBe(1450);
    const b = s.createNetwork({ name: 'ov2', driver: 'overlay', options: { encrypted: '' } });
    expect([b.subnet, b.scope]).toEqual(['10.0.1.0/24', 'local']);
    expect(networkMtu(b)).toBe(1418);
    for (const [options, msg] of [
      [{ vni: '0' }, 'invalid option vni="0": must be an integer from 1 to 16777215'],
      [{ vni: '16777216' }, 'invalid option vni="16777216": must be an integer from 1 to 16777215'],
      [{ vxlan_port: 'x' }, 'invalid option vxlan_port="x": must be an integer from 1 to 65535'],
      [{ peers: '10.0.0.1,nope' }, 'invalid option peers="10.0.0.1,nope": "nope" is not an IPv4 address'],
      [{ encrypted: 'yes' }, 'invalid option encrypted="yes": give -o encrypted (or encrypted=true)'],
      [{ color: 'red' }, 'unknown option "color" for driver overlay (known: vni, vxlan_port, peers, encrypted, key_rotation, com.docker.network.driver.mtu, usernet.offload)'],
    ] as const) {
      rejects(s, () => s.createNetwork({ name: 'bad', driver: 'overlay', options: { ...options } }), msg);
    }
  });
  it('adopts a network another host made (same id), refuses clashes, forgets it unless in use', () => {
    const other = new State({ newId: ids(), supportedDrivers: ['bridge', 'overlay'] });
    const remote = other.createNetwork({ name: 'shared', driver: 'overlay', scope: 'swarm', subnet: '10.9.0.0/24' });
    let k = 0;
    const otherIds = () => (k++).toString(16).padStart(64, 'e');
    const s = new State({ newId: otherIds, supportedDrivers: ['bridge', 'overlay'] });
    const n = s.adoptNetwork(remote);
    expect(n.id).toBe(remote.id);
    expect(n.gatewayMac).toBe(remote.gatewayMac);
    expect(s.adoptNetwork(remote)).toBe(n);
    const s2 = new State({ newId: otherIds, supportedDrivers: ['bridge', 'overlay'] });
    s2.createNetwork({ name: 'local', subnet: '10.9.0.0/16' });
    expect(() => s2.adoptNetwork(remote)).toThrow('subnet 10.9.0.0/24 overlaps with network "local" (10.9.0.0/16)');
    s.createContainer({ name: 'c1', network: 'shared' });
    expect(s.forgetNetwork(n.id)).toBe(false);
    s.removeContainer('c1');
    expect(s.forgetNetwork(n.id)).toBe(true);
    expect(s.lookupNetwork('shared')).toBeUndefined();
  });
  it('finds by name, full id and unambiguous id prefix', () => {
    const s = mk();
    const n = s.createNetwork({ name: 'foo' });
    expect(s.findNetwork('foo')).toBe(n);
    expect(s.findNetwork(n.id)).toBe(n);
    expect(s.findNetwork(n.id.slice(0, 4))).toBe(n);
    rejects(s, () => s.findNetwork('nope'), 'network nope not found');
    // a name wins over an id prefix that happens to match
    const other = s.createNetwork({ name: n.id.slice(0, 4) });
    expect(s.findNetwork(n.id.slice(0, 4))).toBe(other);
  });
  it('reports ambiguous id prefixes', () => {
    const s = new State({ newId: (() => { let i = 0; return () => `${'ab'}${(++i).toString(16).padStart(62, '0')}`; })() });
    rejects(s, () => s.findNetwork('ab'), 'network ab is ambiguous (3 matches found based on ID prefix)');
  });
  it('removes, refusing built-ins and networks with endpoints', () => {
    const s = mk();
    const n = s.createNetwork({ name: 'foo' });
    s.createContainer({ name: 'web', network: 'foo' });
    rejects(s, () => s.removeNetwork('foo'), 'error while removing network: network foo has active endpoints');
    rejects(s, () => s.removeNetwork('bridge'), 'bridge is a pre-defined network and cannot be removed');
    rejects(s, () => s.removeNetwork('host'), 'host is a pre-defined network and cannot be removed');
    rejects(s, () => s.removeNetwork('none'), 'none is a pre-defined network and cannot be removed');
    rejects(s, () => s.removeNetwork('nope'), 'network nope not found');
    s.removeContainer('web');
    expect(s.removeNetwork(n.id.slice(0, 6))).toBe(n);
    expect(s.networks().map((x) => x.name)).toEqual(['bridge', 'host', 'none']);
    // its subnet is free again
    expect(s.createNetwork({ name: 'again' }).subnet).toBe('172.18.0.0/16');
  });
  it('prune removes unused user networks only', () => {
    const s = mk();
    s.createNetwork({ name: 'a' });
    s.createNetwork({ name: 'b' });
    s.createNetwork({ name: 'c' });
    s.createContainer({ name: 'web', network: 'b' });
    expect(s.prune().map((n) => n.name)).toEqual(['a', 'c']);
    expect(s.networks().map((n) => n.name)).toEqual(['bridge', 'host', 'none', 'b']);
    expect(s.prune()).toEqual([]);
  });
  it('hooks: addresses and endpoints held outside the State (DHCP leases, attachments)', () => {
    const s = mk();
    const lan = s.createNetwork({ name: 'lan', subnet: '10.9.0.0/24' });
    s.createNetwork({ name: 'other' });
    const leased = [0x0a090002, 0x0a090004];
    s.extraTaken = (id) => (id === lan.id ? leased : []);
    s.extraInUse = (id) => id === lan.id;
    expect(s.takenAddresses(lan)).toEqual(leased);
    s.createContainer({ name: 'aa', network: 'lan' });
    expect(s.findContainer('aa').endpoints[0].ip).toBe('10.9.0.3');
    expect(() => s.createContainer({ name: 'bb', network: 'lan', ip: '10.9.0.4' })).toThrow();
    // survives a rollback
    s.restore(s.toJSON());
    s.createContainer({ name: 'cc', network: 'lan' });
    expect(s.findContainer('cc').endpoints[0].ip).toBe('10.9.0.5');
    s.removeContainer('aa');
    s.removeContainer('cc');
    expect(() => s.removeNetwork('lan')).toThrow(/has active endpoints/);
    expect(s.prune().map((n) => n.name)).toEqual(['other']);
    s.extraInUse = null;
    expect(s.removeNetwork('lan').name).toBe('lan');
  });
});

describe('containers', () => {
  it('on the default bridge: addresses in order, Docker MACs, eth0', () => {
    const s = mk();
    const a = s.createContainer({ name: 'ca' });
    const b = s.createContainer({ name: 'cb' });
    expect(a.networkMode).toBe('default');
    expect(a.endpoints).toHaveLength(1);
    expect(a.endpoints[0]).toMatchObject({ network: 'bridge', ip: '172.17.0.2', mac: '02:42:ac:11:00:02', ifname: 'eth0', aliases: [], staticIp: false });
    expect(b.endpoints[0]!.ip).toBe('172.17.0.3');
    expect(a.hostname).toBe(a.id.slice(0, 12));
    expect(a.id).toMatch(/^[0-9a-f]{64}$/);
    expect(a.endpoints[0]!.endpointId).toMatch(/^[0-9a-f]{64}$/);
  });
  it('reuses the lowest freed address', () => {
    const s = mk();
    s.createContainer({ name: 'ca' });
    s.createContainer({ name: 'cb' });
    s.createContainer({ name: 'cc' });
    s.removeContainer('cb');
    expect(s.createContainer({ name: 'cd' }).endpoints[0]!.ip).toBe('172.17.0.3');
    expect(s.createContainer({ name: 'ce' }).endpoints[0]!.ip).toBe('172.17.0.5');
  });
  it('on a user network with --ip, aliases, hostname and MAC', () => {
    const s = mk();
    s.createNetwork({ name: 'app', subnet: '10.9.0.0/24' });
    const c = s.createContainer({ name: 'db', network: 'app', ip: '10.9.0.50', aliases: ['database', 'pg', 'pg'], hostname: 'db1.local', mac: '02:AA:bb:cc:dd:ee' });
    expect(c.endpoints[0]).toMatchObject({ network: 'app', ip: '10.9.0.50', staticIp: true, mac: '02:aa:bb:cc:dd:ee', aliases: ['database', 'pg'] });
    expect(c.hostname).toBe('db1.local');
    // dynamic allocation goes around the static address
    expect(s.createContainer({ name: 'cx', network: 'app' }).endpoints[0]!.ip).toBe('10.9.0.2');
  });
  it('host and none have no endpoints', () => {
    const s = mk();
    const h = s.createContainer({ name: 'ch', network: 'host', ports: [{ containerPort: 80 }] });
    const n = s.createContainer({ name: 'cn', network: 'none' });
    expect(h).toMatchObject({ networkMode: 'host', endpoints: [], ports: [], hostname: '' });
    expect(n).toMatchObject({ networkMode: 'none', endpoints: [] });
    expect(n.hostname).toBe(n.id.slice(0, 12));
    expect(s.attachedTo(s.findNetwork('host')).map((c) => c.name)).toEqual(['ch']);
    expect(s.attachedTo(s.findNetwork('none')).map((c) => c.name)).toEqual(['cn']);
    expect(HOST_MODE_PORTS_WARNING).toMatch(/discarded/);
  });
  it.each([
    [{ name: '' }, 'container name is required (--name)'],
    [{ name: 'a' }, 'Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ name: '_web' }, 'Invalid container name (_web), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ name: 'we b' }, 'Invalid container name (we b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ name: 'web' }, 'the container name "web" is already in use by container 0006abababab'],
    [{ name: 'cx', network: 'nope' }, 'network nope not found'],
    [{ name: 'cx', ip: '172.17.0.9' }, 'user specified IP address is supported on user defined networks only'],
    [{ name: 'cx', aliases: ['y'] }, 'network-scoped alias is supported only for containers in user defined networks'],
    [{ name: 'cx', network: 'auto', ip: '172.18.0.9' }, 'user specified IP address is supported only when connecting to networks with user configured subnets'],
    [{ name: 'cx', network: 'host', ip: '10.1.0.9' }, 'user specified IP address is supported on user defined networks only'],
    [{ name: 'cx', network: 'host', aliases: ['y'] }, 'network-scoped alias is supported only for containers in user defined networks'],
    [{ name: 'cx', network: 'none', mac: '02:00:00:00:00:01' }, 'conflicting options: mac-address and the network mode'],
    [{ name: 'cx', network: 'foo', ip: '10.2.0.5' }, 'address 10.2.0.5 is not in subnet 10.1.0.0/24 of network "foo"'],
    [{ name: 'cx', network: 'foo', ip: '10.1.0.2' }, 'address 10.1.0.2 is already in use on network "foo"'],
    [{ name: 'cx', network: 'foo', ip: '10.1.0.1' }, 'address 10.1.0.1 is the gateway of network "foo"'],
    [{ name: 'cx', network: 'foo', ip: '10.1.0.0' }, 'address 10.1.0.0 is the network address of subnet 10.1.0.0/24'],
    [{ name: 'cx', network: 'foo', ip: '10.1.0.255' }, 'address 10.1.0.255 is the broadcast address of subnet 10.1.0.0/24'],
    [{ name: 'cx', network: 'foo', ip: 'ten' }, 'invalid IP address "ten": not an IPv4 address (expected a.b.c.d)'],
    [{ name: 'cx', network: 'foo', mac: '02:42:0a:01:00:02' }, 'MAC address 02:42:0a:01:00:02 is already in use on network foo (container web)'],
    [{ name: 'cx', mac: '01:00:5e:00:00:01' }, 'invalid MAC address "01:00:5e:00:00:01": multicast/broadcast address cannot be assigned'],
    [{ name: 'cx', mac: 'nope' }, 'invalid MAC address "nope": expected six hex octets like 02:42:ac:11:00:02'],
    [{ name: 'cx', hostname: '-bad' }, 'invalid hostname "-bad": only letters, digits, "-" and "." are allowed, and a label may not start or end with "-"'],
    [{ name: 'cx', hostname: 'a'.repeat(65) }, `invalid hostname "${'a'.repeat(65)}": longer than 64 characters`],
    [{ name: 'cx', network: 'foo', aliases: ['bad alias'] }, 'invalid alias "bad alias": only letters, digits, "-", "_" and "." are allowed'],
    [{ name: 'cx', ports: [{ containerPort: 80, hostPort: 8080 }] }, 'Bind for 0.0.0.0:8080 failed: port is already allocated'],
    [{ name: 'cx', ports: [{ containerPort: 0 }] }, 'invalid container port 0: out of range'],
  ])('rejects %j and leaves state unchanged', (spec, msg) => {
    const s = mk();
    s.createNetwork({ name: 'foo', subnet: '10.1.0.0/24' });
    s.createNetwork({ name: 'auto' });
    s.createContainer({ name: 'web', network: 'foo', ports: [{ containerPort: 80, hostPort: 8080 }] });
    rejects(s, () => s.createContainer(spec), msg);
  });
  it('exhausting a network gives a clear error', () => {
    const s = mk();
    s.createNetwork({ name: 'tiny', subnet: '10.1.0.0/30' });
    s.createContainer({ name: 'c1', network: 'tiny' });
    rejects(s, () => s.createContainer({ name: 'c2', network: 'tiny' }), "no available IPv4 addresses on this network's address pools: tiny (10.1.0.0/30)");
  });
  it('finds and removes by name or id prefix', () => {
    const s = mk();
    const c = s.createContainer({ name: 'web' });
    expect(s.findContainer('web')).toBe(c);
    expect(s.findContainer('/web')).toBe(c);
    expect(s.findContainer(c.id.slice(0, 5))).toBe(c);
    rejects(s, () => s.findContainer('nope'), 'No such container: nope');
    rejects(s, () => s.removeContainer('nope'), 'No such container: nope');
    expect(s.removeContainer(c.id)).toBe(c);
    expect(s.containers()).toEqual([]);
  });
  it('published ports: explicit, picked, per-address and per-protocol', () => {
    const s = mk();
    const a = s.createContainer({
      name: 'ca',
      ports: [parsePublish('8080:80'), parsePublish('80'), parsePublish('127.0.0.1:9000:90/udp'), parsePublish('81')],
    });
    expect(a.ports).toEqual([
      { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 32768, containerPort: 80, proto: 'tcp' },
      { hostIp: '127.0.0.1', hostPort: 9000, containerPort: 90, proto: 'udp' },
      { hostIp: '0.0.0.0', hostPort: 32769, containerPort: 81, proto: 'tcp' },
    ]);
    // same port other protocol / other specific address is fine
    const b = s.createContainer({ name: 'cb', ports: [parsePublish('8080:80/udp'), parsePublish('127.0.0.2:9000:90/udp'), parsePublish('80')] });
    expect(b.ports.map((p) => p.hostPort)).toEqual([8080, 9000, 32770]);
    rejects(s, () => s.createContainer({ name: 'cc', ports: [parsePublish('9000:90/udp')] }), 'Bind for 0.0.0.0:9000 failed: port is already allocated');
    rejects(s, () => s.createContainer({ name: 'cc', ports: [parsePublish('7000:1'), parsePublish('7000:2')] }), 'Bind for 0.0.0.0:7000 failed: port is already allocated');
  });
});

describe('parsePublish', () => {
  it('parses the forms', () => {
    expect(parsePublish('80')).toEqual({ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, proto: 'tcp' });
    expect(parsePublish('8080:80')).toEqual({ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' });
    expect(parsePublish('127.0.0.1:8080:80')).toEqual({ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, proto: 'tcp' });
    expect(parsePublish('127.0.0.1::53/udp')).toEqual({ hostIp: '127.0.0.1', hostPort: 0, containerPort: 53, proto: 'udp' });
  });
  it.each([
    ['', 'invalid publish spec "": empty'],
    ['80/sctp', 'invalid publish spec "80/sctp": protocol must be tcp or udp, not "sctp"'],
    ['8080-8081:80', 'invalid publish spec "8080-8081:80": port ranges are not supported'],
    ['http', 'invalid publish spec "http": container port "http" is not a number'],
    ['70000:80', 'invalid publish spec "70000:80": host port 70000 is out of range 1-65535'],
    ['1.2.3:80:80', 'invalid publish spec "1.2.3:80:80": host address "1.2.3" is not an IPv4 address'],
    ['[::1]:80:80', 'invalid publish spec "[::1]:80:80": IPv6 host addresses are not supported'],
    ['a:b:c:d', 'invalid publish spec "a:b:c:d": expected [IP:][HOSTPORT:]PORT[/tcp|/udp]'],
  ])('rejects %j', (s, msg) => {
    expect(() => parsePublish(s)).toThrow(msg);
  });
});

describe('connect / disconnect', () => {
  it('adds interfaces with the lowest free index and removes them', () => {
    const s = mk();
    s.createNetwork({ name: 'front', subnet: '10.1.0.0/24' });
    s.createNetwork({ name: 'back', subnet: '10.2.0.0/24' });
    s.createContainer({ name: 'app', network: 'front' });
    const r = s.connect('back', 'app', { ip: '10.2.0.9', aliases: ['api'] });
    expect(r.network.name).toBe('back');
    expect(r.endpoint).toMatchObject({ network: 'back', ip: '10.2.0.9', ifname: 'eth1', aliases: ['api'], mac: '02:42:0a:02:00:09' });
    expect(r.container.endpoints.map((e) => e.ifname)).toEqual(['eth0', 'eth1']);
    expect(s.findContainer('app')).toBe(r.container);
    const d = s.disconnect('front', 'app');
    expect(d.endpoint.ifname).toBe('eth0');
    expect(d.container.endpoints.map((e) => e.network)).toEqual(['back']);
    const again = s.connect('front', 'app');
    expect(again.endpoint.ifname).toBe('eth0');
    expect(again.endpoint.ip).toBe('10.1.0.2');
    s.connect('bridge', 'app');
    expect(s.findContainer('app').endpoints.map((e) => e.ifname)).toEqual(['eth1', 'eth0', 'eth2']);
  });
  it('outbound goes through the first non-internal network by name', () => {
    const s = mk();
    s.createNetwork({ name: 'b-ext' });
    s.createNetwork({ name: 'a-int', internal: true });
    s.createNetwork({ name: 'c-ext' });
    s.createContainer({ name: 'app', network: 'c-ext' });
    s.connect('a-int', 'app');
    s.connect('b-ext', 'app');
    const c = s.findContainer('app');
    expect(outboundEndpoint(c, (id) => s.networkById(id))!.network).toBe('b-ext');
    s.disconnect('b-ext', 'app');
    s.disconnect('c-ext', 'app');
    expect(outboundEndpoint(s.findContainer('app'), (id) => s.networkById(id))).toBeNull();
  });
  it.each<[string, string, ConnectOptions, string]>([
    ['foo', 'web', {}, 'endpoint with name web already exists in network foo'],
    ['nope', 'web', {}, 'network nope not found'],
    ['foo', 'nope', {}, 'No such container: nope'],
    ['bar', 'web', { ip: '10.1.0.5' }, 'address 10.1.0.5 is not in subnet 10.2.0.0/24 of network "bar"'],
    ['bar', 'web', { ip: '10.2.0.2' }, 'address 10.2.0.2 is already in use on network "bar"'],
    ['bar', 'web', { ip: '10.2.0.1' }, 'address 10.2.0.1 is the gateway of network "bar"'],
    ['auto', 'web', { ip: '172.18.0.7' }, 'user specified IP address is supported only when connecting to networks with user configured subnets'],
    ['bridge', 'web', { aliases: ['x'] }, 'network-scoped alias is supported only for containers in user defined networks'],
    ['bridge', 'web', { ip: '172.17.0.9' }, 'user specified IP address is supported on user defined networks only'],
    ['host', 'web', {}, 'container cannot be disconnected from host network or connected to host network'],
    ['none', 'web', {}, 'container cannot be connected to multiple networks with one of the networks in private (none) mode'],
    ['foo', 'ch', {}, 'container cannot be disconnected from host network or connected to host network'],
    ['foo', 'cn', {}, 'container cannot be connected to multiple networks with one of the networks in private (none) mode'],
  ])('connect %s %s %j rejects and leaves state unchanged', (net, ctr, opts, msg) => {
    const s = mk();
    s.createNetwork({ name: 'foo', subnet: '10.1.0.0/24' });
    s.createNetwork({ name: 'bar', subnet: '10.2.0.0/24' });
    s.createNetwork({ name: 'auto' });
    s.createContainer({ name: 'web', network: 'foo' });
    s.createContainer({ name: 'other', network: 'bar' });
    s.createContainer({ name: 'ch', network: 'host' });
    s.createContainer({ name: 'cn', network: 'none' });
    rejects(s, () => s.connect(net, ctr, opts), msg);
  });
  it.each([
    ['bar', 'web', 'container web is not connected to network bar'],
    ['nope', 'web', 'network nope not found'],
    ['foo', 'nope', 'No such container: nope'],
    ['host', 'ch', 'container cannot be disconnected from host network or connected to host network'],
    ['foo', 'ch', 'container cannot be disconnected from host network or connected to host network'],
  ])('disconnect %s %s rejects and leaves state unchanged', (net, ctr, msg) => {
    const s = mk();
    s.createNetwork({ name: 'foo', subnet: '10.1.0.0/24' });
    s.createNetwork({ name: 'bar', subnet: '10.2.0.0/24' });
    s.createContainer({ name: 'web', network: 'foo' });
    s.createContainer({ name: 'ch', network: 'host' });
    rejects(s, () => s.disconnect(net, ctr), msg);
  });
});

describe('persistence', () => {
  function populated(): State {
    const s = mk();
    s.createNetwork({ name: 'front', subnet: '10.1.0.0/24', ipRange: '10.1.0.128/25', labels: { a: 'b' }, options: { 'com.docker.network.driver.mtu': '1400' } });
    s.createNetwork({ name: 'back', internal: true });
    s.createContainer({ name: 'web', network: 'front', aliases: ['www'], ports: [{ containerPort: 80, hostPort: 8080 }] });
    s.createContainer({ name: 'db', network: 'back', mac: '02:00:00:00:00:aa' });
    s.connect('back', 'web', { aliases: ['api'] });
    s.createContainer({ name: 'ch', network: 'host' });
    return s;
  }
  it('round trips through JSON', () => {
    const s = populated();
    const json = JSON.parse(JSON.stringify(s.toJSON())) as StateJSON;
    expect(json.version).toBe(1);
    const r = State.fromJSON(json, { newId: ids() });
    expect(r.toJSON()).toEqual(s.toJSON());
    // allocation continues where it left off
    expect(r.createContainer({ name: 'n2', network: 'front' }).endpoints[0]!.ip).toBe('10.1.0.129');
    expect(r.createNetwork({ name: 'next' }).subnet).toBe(s.createNetwork({ name: 'next' }).subnet);
  });
  it('toJSON is a detached copy', () => {
    const s = populated();
    const j = s.toJSON();
    j.networks.pop();
    (j.containers[0]!.endpoints as unknown[]).length = 0;
    expect(s.toJSON()).not.toEqual(j);
    expect(s.findContainer('web').endpoints).toHaveLength(2);
  });
  it('records are frozen', () => {
    const s = populated();
    expect(Object.isFrozen(s.findContainer('web'))).toBe(true);
    expect(Object.isFrozen(s.findContainer('web').endpoints)).toBe(true);
    expect(Object.isFrozen(s.findNetwork('front').options)).toBe(true);
  });
  it('restore rolls back to a snapshot', () => {
    const s = populated();
    const before = s.toJSON();
    s.disconnect('back', 'web');
    s.removeContainer('db');
    s.restore(before);
    expect(s.toJSON()).toEqual(before);
  });
  it('recreates missing built-ins', () => {
    const s = populated();
    const j = s.toJSON();
    j.networks = j.networks.filter((n) => n.name !== 'none');
    const r = State.fromJSON(j, { newId: ids() });
    expect(r.networks().map((n) => n.name).sort()).toEqual(['back', 'bridge', 'front', 'host', 'none']);
  });
  it.each([
    [(j: StateJSON) => ((j as { version: number }).version = 2), 'invalid state file: unsupported version 2 (expected 1)'],
    [(j: StateJSON) => ((j as { networks: unknown }).networks = {}), 'invalid state file: networks and containers must be arrays'],
    [(j: StateJSON) => j.networks.push({ ...j.networks[3]!, id: 'f'.repeat(64), gatewayMac: '02:75:6e:ff:ff:ff' }), 'invalid state file: duplicate network name front'],
    [(j: StateJSON) => j.networks.push({ ...j.networks[3]!, name: 'copy', id: 'f'.repeat(64), gatewayMac: '02:75:6e:ff:ff:ff' }), 'invalid state file: subnet of network copy overlaps network front'],
    [(j: StateJSON) => ((j.networks[3] as { subnet: string }).subnet = '10.1.0.0/33'), 'invalid state file: network front: invalid subnet "10.1.0.0/33": prefix length must be a number from 0 to 32'],
    [(j: StateJSON) => j.containers.push({ ...j.containers[1]!, id: 'e'.repeat(64) }), 'invalid state file: duplicate container name db'],
    [(j: StateJSON) => ((j.containers[1]!.endpoints[0] as { networkId: string }).networkId = 'd'.repeat(64)), `invalid state file: container db is attached to unknown network ${'d'.repeat(64)}`],
    [(j: StateJSON) => ((j.containers[1]!.endpoints[0] as { ip: string }).ip = '10.9.9.9'), 'invalid state file: container db: address 10.9.9.9 is not in subnet 172.18.0.0/16 of network "back"'],
    [(j: StateJSON) => ((j.containers[0] as { name: string }).name = 'x'), 'invalid state file: container x: bad name'],
    [(j: StateJSON) => ((j.networks[0] as { gatewayMac: string }).gatewayMac = '02:00:00:00:00:01'), 'invalid state file: network bridge: gatewayMac does not match the id'],
  ])('fromJSON rejects a bad file (%#)', (mutate, msg) => {
    const s = populated();
    const j = structuredClone(s.toJSON());
    mutate(j);
    expect(() => State.fromJSON(j)).toThrow(msg);
    // restore with a bad snapshot leaves the state unchanged too
    rejects(s, () => s.restore(j), msg);
  });
  it('fromJSON rejects two containers with one address', () => {
    const s = populated();
    const j = structuredClone(s.toJSON());
    const db = j.containers[1]!;
    j.containers.push({ ...db, name: 'db2', id: 'e'.repeat(64), endpoints: db.endpoints.map((e) => ({ ...e, endpointId: 'd'.repeat(64) })) });
    expect(() => State.fromJSON(j)).toThrow(`invalid state file: address ${db.endpoints[0]!.ip} is used twice on network back`);
  });
  it('fromJSON rejects non-objects', () => {
    expect(() => State.fromJSON(null)).toThrow('invalid state file: not an object');
    expect(() => State.fromJSON('x')).toThrow('invalid state file: not an object');
  });
});

describe('published ports and internal networks', () => {
  it('refuses -p on an internal network and changes nothing', () => {
    const s = new State();
    s.createNetwork({ name: 'secret', internal: true, subnet: '10.77.0.0/24' });
    const before = JSON.stringify(s.toJSON());
    expect(() => s.createContainer({ name: 'vault', network: 'secret', ports: [parsePublish('8080:80')] })).toThrow(
      'ports cannot be published on internal network secret: it has no route in or out',
    );
    expect(JSON.stringify(s.toJSON())).toBe(before);
  });
});

describe('container network mode (a shared namespace)', () => {
  it('shares the root target, refuses what it cannot have, survives a round trip, and protects its target', () => {
    const s = new State();
    s.createNetwork({ name: 'lan', subnet: '10.78.0.0/24' });
    const web = s.createContainer({ name: 'web', network: 'lan' });
    const a = s.createContainer({ name: 'side', network: 'container:web' });
    const b = s.createContainer({ name: 'side2', network: 'container:side' });
    expect(a.networkMode).toBe('container');
    expect(a.sharesWith).toBe(web.id);
    expect(b.sharesWith).toBe(web.id); // followed to the root
    expect(a.endpoints).toEqual([]);
    const before = JSON.stringify(s.toJSON());
    expect(() => s.createContainer({ name: 'x1', network: 'container:web', ports: [parsePublish('80')] })).toThrow(/port publishing/);
    expect(() => s.createContainer({ name: 'x2', network: 'container:web', ip: '10.78.0.9' })).toThrow(/conflicting options/);
    expect(() => s.createContainer({ name: 'x3', network: 'container:nosuch' })).toThrow(/No such container/);
    expect(() => s.connect('lan', 'side')).toThrow(/shares another container's network namespace/);
    expect(() => s.removeContainer('web')).toThrow(/in use: side shares its network namespace/);
    expect(JSON.stringify(s.toJSON())).toBe(before);
    const back = State.fromJSON(s.toJSON());
    expect(back.findContainer('side').sharesWith).toBe(web.id);
    s.removeContainer('side2');
    s.removeContainer('side');
    s.removeContainer('web');
  });
});

describe("subnets that collide with usernet's own links or special ranges", () => {
  const reserved = [
    { name: 'host-link', subnet: { base: 0xc613fffc, prefix: 30 }, what: "usernet's host link" },
    { name: 'uplink', subnet: { base: 0xc0000200, prefix: 24 }, what: "usernet's uplink up0" },
  ];
  const mkd = () => new State({ newId: ids(), supportedDrivers: ['bridge', 'overlay', 'macvlan'], reserved });
  it.each([
    ['192.0.2.0/24', "subnet 192.0.2.0/24 overlaps with usernet's uplink up0 (192.0.2.0/24)"],
    ['192.0.0.0/16', "subnet 192.0.0.0/16 overlaps with usernet's uplink up0 (192.0.2.0/24)"],
    ['192.0.2.128/25', "subnet 192.0.2.128/25 overlaps with usernet's uplink up0 (192.0.2.0/24)"],
    ['198.19.255.252/30', "subnet 198.19.255.252/30 overlaps with usernet's host link (198.19.255.252/30)"],
    ['198.18.0.0/15', "subnet 198.18.0.0/15 overlaps with usernet's host link (198.19.255.252/30)"],
    ['127.0.0.0/8', 'subnet 127.0.0.0/8 overlaps with the loopback range 127.0.0.0/8 (127.0.0.0/8)'],
    ['127.5.0.0/16', 'subnet 127.5.0.0/16 overlaps with the loopback range 127.0.0.0/8 (127.0.0.0/8)'],
    ['224.0.0.0/24', 'subnet 224.0.0.0/24 overlaps with the multicast range 224.0.0.0/4 (224.0.0.0/4)'],
    ['239.1.0.0/16', 'subnet 239.1.0.0/16 overlaps with the multicast range 224.0.0.0/4 (224.0.0.0/4)'],
    ['169.254.0.0/16', 'subnet 169.254.0.0/16 overlaps with the link-local range 169.254.0.0/16 (169.254.0.0/16)'],
    ['0.0.0.0/8', 'subnet 0.0.0.0/8 overlaps with 0.0.0.0/8 ("this network", RFC 1122) (0.0.0.0/8)'],
    ['0.0.0.0/0', 'subnet 0.0.0.0/0 overlaps with 0.0.0.0/8 ("this network", RFC 1122) (0.0.0.0/8)'],
    ['240.0.0.0/24', 'subnet 240.0.0.0/24 overlaps with the reserved range 240.0.0.0/4 (240.0.0.0/4)'],
  ])('bridge on %s is refused and nothing changes', (subnet, msg) => {
    const s = mkd();
    rejects(s, () => s.createNetwork({ name: 'n', subnet }), msg);
    rejects(s, () => s.createNetwork({ name: 'n', driver: 'overlay', subnet }), msg);
  });
  it('the default pools skip the uplink and host link subnets', () => {
    const s = new State({ newId: ids(), reserved: [{ name: 'uplink', subnet: { base: 0xac120000, prefix: 16 }, what: 'uplink' }] });
    expect(s.createNetwork({ name: 'a' }).subnet).toBe('172.19.0.0/16'); // 172.17 is the default bridge, 172.18 the uplink
  });
  it('macvlan may share its parent LAN with the uplink, but never a special range', () => {
    const s = mkd();
    expect(s.createNetwork({ name: 'mv', driver: 'macvlan', subnet: '192.0.2.0/24', options: { parent: 'eth9' } }).subnet).toBe('192.0.2.0/24');
    rejects(s, () => s.createNetwork({ name: 'mv2', driver: 'macvlan', subnet: '127.0.0.0/24', options: { parent: 'eth8' } }), 'subnet 127.0.0.0/24 overlaps with the loopback range 127.0.0.0/8 (127.0.0.0/8)');
  });
  it('an overlay network from the cluster on the uplink subnet is refused', () => {
    const other = new State({ newId: ids(), supportedDrivers: ['bridge', 'overlay'] });
    const remote = other.createNetwork({ name: 'ov', driver: 'overlay', subnet: '192.0.2.0/24' });
    const s = mkd();
    rejects(s, () => s.adoptNetwork(remote), "subnet 192.0.2.0/24 overlaps with usernet's uplink up0 (192.0.2.0/24)");
  });
});
