import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ComposePlan,
  checkExternal,
  checkPlan,
  containerSpec,
  downPlan,
  findComposeFile,
  loadCompose,
  normaliseProjectName,
  planCompose,
} from './compose.js';
import { State } from './model.js';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures/compose');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

const plan = (yaml: string, project = 'demo'): ComposePlan => planCompose(yaml, 'compose.yml', project);

/** planCompose throws exactly `msg`. */
function rejects(yaml: string, msg: string, project = 'demo'): void {
  let err: unknown;
  try {
    plan(yaml, project);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(Error);
  expect((err as Error).message).toBe(msg);
}

const netLabels = (key: string, project = 'demo') => ({ 'com.docker.compose.project': project, 'com.docker.compose.network': key });
const ctrLabels = (svc: string, project = 'demo') => ({ 'com.docker.compose.project': project, 'com.docker.compose.service': svc });
const bridge = (name: string, key: string) => ({
  key,
  name,
  external: false,
  spec: { name, driver: 'bridge', internal: false, attachable: false, options: {}, labels: netLabels(key) },
});

function ids(): () => string {
  let n = 0;
  return () => {
    n++;
    const h = n.toString(16).padStart(4, '0');
    return `${h}${'ab'.repeat(4)}${h}`.padEnd(64, 'c');
  };
}
const mkState = (): State => new State({ newId: ids(), now: () => new Date('2026-01-02T03:04:05.000Z') });

describe("the seeds' compose files", () => {
  it('default network: every service on <project>_default, reachable by service name', () => {
    const p = plan(fixture('default.yml'));
    expect(p).toEqual({
      project: 'demo',
      file: 'compose.yml',
      networks: [bridge('demo_default', 'default')],
      containers: ['web', 'app', 'db'].map((svc) => ({
        service: svc,
        name: `demo-${svc}-1`,
        networkMode: 'default',
        attachments: [{ network: 'demo_default', aliases: [svc] }],
        ports: svc === 'web' ? [{ hostIp: '0.0.0.0', hostPort: 80, containerPort: 80, proto: 'tcp' }] : [],
        labels: ctrLabels(svc),
      })),
      warnings: [],
    });
  });

  it('frontend/backend: app on both, in the order the file lists them', () => {
    const p = plan(fixture('frontend-backend.yml'));
    expect(p.networks).toEqual([bridge('demo_frontend_network', 'frontend_network'), bridge('demo_backend_network', 'backend_network')]);
    expect(p.containers.map((c) => [c.name, c.attachments])).toEqual([
      ['demo-web-1', [{ network: 'demo_frontend_network', aliases: ['web'] }]],
      [
        'demo-app-1',
        [
          { network: 'demo_frontend_network', aliases: ['app'] },
          { network: 'demo_backend_network', aliases: ['app'] },
        ],
      ],
      ['demo-db-1', [{ network: 'demo_backend_network', aliases: ['db'] }]],
    ]);
    expect(p.containers[0]!.ports).toEqual([{ hostIp: '0.0.0.0', hostPort: 80, containerPort: 80, proto: 'tcp' }]);
  });

  it('external network: planned under its own name, not created, checked against the daemon', () => {
    const p = plan(fixture('external.yml'));
    expect(p.networks).toEqual([{ key: 'existing_network', name: 'existing_network', external: true, spec: null }]);
    expect(p.containers).toEqual([
      {
        service: 'my_service',
        name: 'demo-my_service-1',
        networkMode: 'default',
        attachments: [{ network: 'existing_network', aliases: ['my_service'] }],
        ports: [],
        labels: ctrLabels('my_service'),
      },
    ]);
    expect(() => checkExternal(p, ['bridge', 'host', 'none'])).toThrow(
      new Error('compose.yml: networks.existing_network: network existing_network declared as external, but could not be found'),
    );
    expect(() => checkExternal(p, ['bridge', 'existing_network'])).not.toThrow();
  });

  it('loadCompose reads the file; the project defaults to its directory', async () => {
    const p = await loadCompose(join(FIXTURES, 'default.yml'));
    expect(p.project).toBe('compose');
    expect(p.networks[0]!.name).toBe('compose_default');
    expect(p.containers.map((c) => c.name)).toEqual(['compose-web-1', 'compose-app-1', 'compose-db-1']);
    expect((await loadCompose(join(FIXTURES, 'default.yml'), 'other')).project).toBe('other');
  });

  it('the plan is deterministic', () => {
    for (const f of ['default.yml', 'frontend-backend.yml', 'external.yml']) {
      expect(JSON.stringify(plan(fixture(f)))).toBe(JSON.stringify(plan(fixture(f))));
    }
  });
});

describe('project and names', () => {
  it('normalises directory names as Compose does', () => {
    expect(normaliseProjectName('My App.v2')).toBe('myappv2');
    expect(normaliseProjectName('__x-Y')).toBe('x-y');
    expect(planCompose('services: {a: {}}', '/srv/My Proj/compose.yml').project).toBe('myproj');
  });
  it('-p wins over the top-level name, which wins over the directory', () => {
    const y = 'name: fromfile\nservices: {a: {}}';
    expect(planCompose(y, '/srv/dir/compose.yml').project).toBe('fromfile');
    expect(planCompose(y, '/srv/dir/compose.yml', 'cli').project).toBe('cli');
  });
  it('rejects bad project names', () => {
    rejects('services: {a: {}}', 'invalid project name "Bad": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number', 'Bad');
    expect(() => planCompose('name: "-x"\nservices: {a: {}}', 'compose.yml')).toThrow(
      'compose.yml: name: invalid project name "-x": must consist only of',
    );
    expect(() => planCompose('services: {a: {}}', '/srv/.../compose.yml')).toThrow(
      new Error('/srv/.../compose.yml: cannot derive a project name from directory "...": use -p NAME'),
    );
  });
  it('name: on a network and container_name replace the defaults', () => {
    const p = plan(`
services:
  web:
    container_name: my-web
    networks: [front]
networks:
  front:
    name: shared-front
`);
    expect(p.networks).toEqual([{ ...bridge('shared-front', 'front') }]);
    expect(p.containers[0]).toMatchObject({ name: 'my-web', attachments: [{ network: 'shared-front', aliases: ['web'] }] });
  });
  it('a declared but unused network is not planned; default is only planned when used', () => {
    const p = plan('services:\n  a: {networks: [x]}\nnetworks:\n  x: {}\n  unused: {}\n');
    expect(p.networks.map((n) => n.name)).toEqual(['demo_x']);
  });
  it('the default network can be customised at the top level', () => {
    const p = plan('services:\n  a: {}\nnetworks:\n  default:\n    name: mynet\n    internal: true\n');
    expect(p.networks).toEqual([{ ...bridge('mynet', 'default'), spec: { ...bridge('mynet', 'default').spec, internal: true } }]);
    const ext = plan('services:\n  a: {}\nnetworks:\n  default:\n    external: true\n    name: pre\n');
    expect(ext.networks).toEqual([{ key: 'default', name: 'pre', external: true, spec: null }]);
    const legacy = plan('services:\n  a: {networks: [n]}\nnetworks:\n  n:\n    external: {name: old}\n');
    expect(legacy.networks).toEqual([{ key: 'n', name: 'old', external: true, spec: null }]);
  });
  it('hostname is planned and validated', () => {
    expect(plan('services:\n  a: {hostname: box1}').containers[0]!.hostname).toBe('box1');
    rejects('services:\n  a: {hostname: "-bad"}', 'compose.yml: services.a.hostname: invalid hostname "-bad": only letters, digits, "-" and "." are allowed, and a label may not start or end with "-"');
  });
});

describe('service networks', () => {
  it('map form with aliases, ipv4_address and null values', () => {
    const p = plan(`
services:
  db:
    networks:
      back:
        aliases: [database, pg, db]
        ipv4_address: 172.28.0.5
      front:
networks:
  front: {}
  back:
    ipam:
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.0/24
          gateway: 172.28.0.254
`);
    expect(p.containers[0]!.attachments).toEqual([
      { network: 'demo_back', ip: '172.28.0.5', aliases: ['db', 'database', 'pg'] },
      { network: 'demo_front', aliases: ['db'] },
    ]);
    expect(p.networks.map((n) => n.spec)).toEqual([
      { ...bridge('demo_back', 'back').spec, subnet: '172.28.0.0/16', gateway: '172.28.0.254', ipRange: '172.28.5.0/24' },
      bridge('demo_front', 'front').spec,
    ]);
  });
  it('list and map forms give the same plan', () => {
    const nets = 'networks:\n  a: {}\n  b: {}\n';
    expect(plan(`services:\n  s:\n    networks: [b, a]\n${nets}`)).toEqual(plan(`services:\n  s:\n    networks:\n      b:\n      a: {}\n${nets}`));
  });
  it('priority reorders attachments (higher first), otherwise file order', () => {
    const p = plan('services:\n  s:\n    networks:\n      a: {}\n      b: {priority: 10}\nnetworks: {a: {}, b: {}}\n');
    expect(p.containers[0]!.attachments.map((a) => a.network)).toEqual(['demo_b', 'demo_a']);
  });
  it('an empty network list means the default network', () => {
    expect(plan('services:\n  s: {networks: []}').containers[0]!.attachments).toEqual([{ network: 'demo_default', aliases: ['s'] }]);
  });
  it('network options, labels, internal, attachable', () => {
    const p = plan(`
services: {s: {networks: [n]}}
networks:
  n:
    driver: bridge
    driver_opts:
      com.docker.network.driver.mtu: 1400
      com.docker.network.bridge.enable_icc: "false"
    labels: [team=net, tier=back]
    internal: true
    attachable: true
`);
    expect(p.networks[0]!.spec).toEqual({
      name: 'demo_n',
      driver: 'bridge',
      internal: true,
      attachable: true,
      options: { 'com.docker.network.driver.mtu': '1400', 'com.docker.network.bridge.enable_icc': 'false' },
      labels: { team: 'net', tier: 'back', ...netLabels('n') },
    });
  });
  it('networks with a configured subnet are planned first', () => {
    const p = plan('services: {s: {networks: [a, b]}}\nnetworks:\n  a: {}\n  b: {ipam: {config: [{subnet: 10.5.0.0/24}]}}\n');
    expect(p.networks.map((n) => n.key)).toEqual(['b', 'a']);
    expect(p.containers[0]!.attachments.map((a) => a.network)).toEqual(['demo_a', 'demo_b']);
  });
});

describe('ports', () => {
  const ports = (list: string) => plan(`services:\n  s:\n    ports:\n${list}`).containers[0]!.ports;
  it('every short form', () => {
    expect(ports('      - "80:80"\n      - "8080:80/udp"\n      - "127.0.0.1:8081:81"\n      - 82\n      - "83"\n      - "127.0.0.1::84"\n      - 9090:90\n')).toEqual([
      { hostIp: '0.0.0.0', hostPort: 80, containerPort: 80, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'udp' },
      { hostIp: '127.0.0.1', hostPort: 8081, containerPort: 81, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 0, containerPort: 82, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 0, containerPort: 83, proto: 'tcp' },
      { hostIp: '127.0.0.1', hostPort: 0, containerPort: 84, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 9090, containerPort: 90, proto: 'tcp' },
    ]);
  });
  it('the long form', () => {
    expect(
      ports(
        '      - {target: 80, published: 8080, host_ip: 127.0.0.1, protocol: udp, mode: host}\n' +
          '      - {target: 81, published: "8081"}\n      - {target: 82}\n      - {target: 83, host_ip: 10.0.0.1}\n',
      ),
    ).toEqual([
      { hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, proto: 'udp' },
      { hostIp: '0.0.0.0', hostPort: 8081, containerPort: 81, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 0, containerPort: 82, proto: 'tcp' },
      { hostIp: '10.0.0.1', hostPort: 0, containerPort: 83, proto: 'tcp' },
    ]);
  });
  it('bad ports name the entry', () => {
    rejects('services:\n  s:\n    ports: ["8080:80/sctp"]', 'compose.yml: services.s.ports[0]: invalid publish spec "8080:80/sctp": protocol must be tcp or udp, not "sctp"');
    rejects('services:\n  s:\n    ports: [80, "70000:80"]', 'compose.yml: services.s.ports[1]: invalid publish spec "70000:80": host port 70000 is out of range 1-65535');
    rejects('services:\n  s:\n    ports: ["8000-8001:80"]', 'compose.yml: services.s.ports[0]: invalid publish spec "8000-8001:80": port ranges are not supported');
    rejects('services:\n  s:\n    ports: [{published: 80}]', 'compose.yml: services.s.ports[0].target: is required');
    rejects('services:\n  s:\n    ports: [{target: 80, hostip: 1.2.3.4}]', 'compose.yml: services.s.ports[0].hostip: unknown key (expected target, published, host_ip, protocol, mode, name, app_protocol)');
    rejects('services:\n  s:\n    ports: "80:80"', 'compose.yml: services.s.ports: must be a list');
  });
  it('the same host port twice in one file', () => {
    rejects('services:\n  a: {ports: ["8080:80"]}\n  b: {ports: ["127.0.0.1:8080:81"]}', 'compose.yml: services.b.ports[0]: host port 127.0.0.1:8080/tcp is already published by services.a');
    expect(plan('services:\n  a: {ports: ["8080:80"]}\n  b: {ports: ["8080:80/udp", 80]}\n  c: {ports: [80]}').containers).toHaveLength(3);
  });
});

describe('network_mode', () => {
  it('host and none: no attachments, ports discarded with a warning (the seeds)', () => {
    const p = plan('services:\n  my_service:\n    image: some_image\n    network_mode: host\n    ports: ["80:80"]\n  isolated_task:\n    image: some-image\n    network_mode: none\n');
    expect(p.networks).toEqual([]);
    expect(p.containers.map((c) => [c.networkMode, c.attachments, c.ports])).toEqual([
      ['host', [], []],
      ['none', [], []],
    ]);
    expect(p.warnings).toEqual(['compose.yml: services.my_service.ports: Published ports are discarded when using host network mode']);
    expect(containerSpec(p.containers[0]!)).toEqual({ name: 'demo-my_service-1', network: 'host', ip: undefined, aliases: [], hostname: undefined, ports: [] });
  });
  it('bridge: the default bridge, no aliases', () => {
    expect(plan('services:\n  a: {network_mode: bridge}').containers[0]!.attachments).toEqual([{ network: 'bridge', aliases: [] }]);
  });
  it('service:NAME shares the namespace and is planned after its target', () => {
    const p = plan('services:\n  sidecar: {network_mode: "service:app"}\n  app: {}\n');
    expect(p.containers.map((c) => [c.service, c.networkMode])).toEqual([
      ['app', 'default'],
      ['sidecar', { sharesWith: 'app' }],
    ]);
    expect(p.containers[1]!.attachments).toEqual([]);
    expect(containerSpec(p.containers[1]!)).toBeNull();
    expect(p.networks.map((n) => n.name)).toEqual(['demo_default']);
  });
  it('unknown and cyclic services, and conflicts', () => {
    rejects('services:\n  a: {network_mode: "service:nope"}\n  b: {}', 'compose.yml: services.a.network_mode: unknown service "nope" (defined: a, b)');
    rejects('services:\n  a: {network_mode: "service:b"}\n  b: {network_mode: "service:a"}', 'compose.yml: services.a.network_mode: network_mode cycle: a -> b -> a');
    rejects('services:\n  a: {network_mode: "service:a"}', 'compose.yml: services.a.network_mode: network_mode cycle: a -> a');
    rejects('services:\n  c: {network_mode: "service:a"}\n  a: {network_mode: "service:b"}\n  b: {network_mode: "service:a"}', 'compose.yml: services.a.network_mode: network_mode cycle: a -> b -> a');
    rejects('services:\n  a: {network_mode: host, networks: [x]}', 'compose.yml: services.a.network_mode: "network_mode" and "networks" cannot be combined');
    rejects('services:\n  a: {}\n  b: {network_mode: "service:a", ports: [80]}', 'compose.yml: services.b.ports: conflicting options: port publishing and the container type network mode');
    rejects('services:\n  a: {}\n  b: {network_mode: "service:a", hostname: x}', 'compose.yml: services.b.hostname: conflicting options: hostname and the network mode');
    rejects('services:\n  a: {network_mode: "container:x"}', 'compose.yml: services.a.network_mode: unsupported network mode "container:x" (expected host, none, bridge or service:NAME)');
  });
  it('an external network named host means host mode', () => {
    const p = plan('services:\n  a: {networks: [h]}\nnetworks:\n  h: {external: true, name: host}\n');
    expect(p.containers[0]).toMatchObject({ networkMode: 'host', attachments: [] });
  });
});

describe('validation errors', () => {
  it('the messages of the brief', () => {
    rejects(fixture('frontend-backend.yml').replace('- frontend_network # frontend_network に接続\n  app', '- frontnd\n  app'),
      'compose.yml: services.web.networks: unknown network "frontnd" (defined: frontend_network, backend_network)');
    rejects('services:\n  db:\n    networks:\n      backend: {ipv4_address: 10.9.0.5}\nnetworks:\n  backend:\n    ipam:\n      config: [{subnet: 172.28.0.0/16}]\n',
      'compose.yml: services.db.networks.backend.ipv4_address: 10.9.0.5 is not in subnet 172.28.0.0/16');
    rejects('services: {a: {networks: [back]}}\nnetworks:\n  back: {driver: macvlan}', 'compose.yml: networks.back.driver_opts: macvlan networks need -o parent=IFACE (an interface in the daemon\'s namespace; IFACE.VLAN for a tagged sub-interface)');
  });
  it('ipv4_address rules', () => {
    const net = 'networks:\n  n:\n    ipam:\n      config: [{subnet: 10.1.0.0/24}]\n';
    const svc = (ip: string) => `services:\n  a:\n    networks:\n      n: {ipv4_address: "${ip}"}\n`;
    rejects(`${svc('10.1.0.5')}networks:\n  n: {}\n`, 'compose.yml: services.a.networks.n.ipv4_address: user specified IP address is supported only when connecting to networks with user configured subnets (set networks.n.ipam.config)');
    rejects(svc('10.1.0.5').replace('n: {ipv4', 'default: {ipv4'), 'compose.yml: services.a.networks.default.ipv4_address: user specified IP address is supported only when connecting to networks with user configured subnets (set networks.default.ipam.config)');
    rejects(svc('10.1.0.1') + net, 'compose.yml: services.a.networks.n.ipv4_address: 10.1.0.1 is the gateway');
    rejects(svc('10.1.0.255') + net, 'compose.yml: services.a.networks.n.ipv4_address: 10.1.0.255 is the broadcast address of subnet 10.1.0.0/24');
    rejects(svc('10.1.0') + net, 'compose.yml: services.a.networks.n.ipv4_address: invalid IPv4 address "10.1.0": not an IPv4 address (expected a.b.c.d)');
    rejects(`${svc('10.1.0.9')}  b:\n    networks:\n      n: {ipv4_address: 10.1.0.9}\n${net}`, 'compose.yml: services.b.networks.n.ipv4_address: 10.1.0.9 is already used by services.a');
    rejects(`${svc('10.1.0.9').replace('ipv4_address', 'ipv6_address')}${net}`, 'compose.yml: services.a.networks.n.ipv6_address: IPv6 is not supported');
  });
  it('static addresses are planned first', () => {
    const p = plan('services:\n  web: {networks: [n]}\n  db:\n    networks:\n      n: {ipv4_address: 10.1.0.2}\nnetworks:\n  n:\n    ipam: {config: [{subnet: 10.1.0.0/24}]}\n');
    expect(p.containers.map((c) => c.service)).toEqual(['db', 'web']);
  });
  it('names', () => {
    rejects('services:\n  "a b": {}', 'compose.yml: services: invalid service name "a b": only letters, digits, "-", "_" and "." are allowed, as a DNS name');
    rejects('services:\n  a: {container_name: "-x"}', 'compose.yml: services.a.container_name: invalid container name "-x": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed');
    rejects('services:\n  a: {container_name: demo-b-1}\n  b: {}', 'compose.yml: services.b.container_name: container name "demo-b-1" is already used by services.a');
    rejects('services:\n  a: {networks: [n]}\nnetworks:\n  n: {name: "bad name"}', 'compose.yml: networks.n.name: invalid network name "bad name": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed');
    rejects('services:\n  a: {networks: [n]}\nnetworks:\n  n: {name: host}', 'compose.yml: networks.n.name: operation is not permitted on predefined host network');
    rejects('services:\n  a: {networks: [n, m]}\nnetworks:\n  n: {name: x}\n  m: {name: x}', 'compose.yml: networks.m.name: network name "x" is also used by networks.n');
    rejects('services:\n  a:\n    networks: [n, n]\nnetworks: {n: {}}', 'compose.yml: services.a.networks: network "n" is listed twice');
    rejects('services:\n  a:\n    networks:\n      n: {aliases: ["bad alias"]}\nnetworks: {n: {}}', 'compose.yml: services.a.networks.n.aliases: invalid alias "bad alias": only letters, digits, "-", "_" and "." are allowed');
  });
  it('network definitions', () => {
    const use = 'services: {a: {networks: [n]}}\nnetworks:\n  n:\n';
    rejects(`${use}    external: true\n    driver: bridge\n`, 'compose.yml: networks.n.driver: conflicting parameters "external" and "driver" specified');
    rejects(`${use}    internal: yes\n`, 'compose.yml: networks.n.internal: must be true or false, not "yes"');
    rejects(`${use}    drivr: bridge\n`, 'compose.yml: networks.n.drivr: unknown key (expected one of name, external, driver, driver_opts, ipam, internal, attachable, labels, enable_ipv6, enable_ipv4)');
    rejects(`${use}    driver_opts: {com.docker.network.driver.mtu: abc}\n`, 'compose.yml: networks.n.driver_opts: invalid option com.docker.network.driver.mtu="abc": must be an integer from 68 to 65535');
    rejects(`${use}    ipam: {config: [{subnet: 10.0.0.0/24}, {subnet: 10.0.1.0/24}]}\n`, 'compose.yml: networks.n.ipam.config: only one entry is supported, got 2');
    rejects(`${use}    ipam: {config: [{subnet: 10.0.0.5/24}]}\n`, 'compose.yml: networks.n.ipam.config[0]: invalid subnet "10.0.0.5/24": host bits are set, it should be 10.0.0.0/24');
    rejects(`${use}    ipam: {config: [{subnet: 10.0.0.0/24, gateway: 10.0.1.1}]}\n`, 'compose.yml: networks.n.ipam.config[0]: gateway 10.0.1.1 is not in subnet 10.0.0.0/24');
    rejects(`${use}    ipam: {config: [{gateway: 10.0.1.1}]}\n`, 'compose.yml: networks.n.ipam.config[0]: every ip-range or gateway must have a corresponding subnet');
    rejects(`${use}    ipam: {driver: dhcp}\n`, 'compose.yml: networks.n.ipam.driver: IPAM driver "dhcp" is not supported');
    rejects(`${use}    enable_ipv6: true\n`, 'compose.yml: networks.n.enable_ipv6: IPv6 is not supported');
    rejects(`${use}    ipam: {config: [{subnet: 10.0.0.0/16}]}\n  m:\n    ipam: {config: [{subnet: 10.0.3.0/24}]}\n`, 'compose.yml: networks.m.ipam.config[0]: subnet 10.0.3.0/24 overlaps with network "demo_n" (10.0.0.0/16)');
  });
  it('structure and YAML errors', () => {
    rejects('services:\n  a:\n    ports: [80\n', 'compose.yml:4:1: Flow sequence in block collection must be sufficiently indented and end with a ]');
    rejects('services:\n  a: {}\n  a: {}\n', 'compose.yml:3:3: Map keys must be unique');
    rejects('', 'compose.yml: empty compose file');
    rejects('- a\n', 'compose.yml: the top level must be a mapping');
    rejects('services: {}\n', 'compose.yml: services: no services defined');
    rejects('services: {a: {}}\nnetwork: {}\n', 'compose.yml: network: unknown key (expected one of version, name, services, networks, volumes, configs, secrets)');
    rejects('services: [a]\n', 'compose.yml: services: must be a mapping, not a list');
    const bomb = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) bomb.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    rejects(`${bomb.join('\n')}\nservices: {a: {}}\n`, 'compose.yml: Excessive alias count indicates a resource exhaustion attack');
    rejects('services:\n  a: {networks: "n"}', 'compose.yml: services.a.networks: must be a mapping, not "n"');
  });
  it('non-networking keys, extensions and YAML merge keys are accepted', () => {
    const p = plan(`
version: "3.9"
x-common: &common
  networks: [n]
  restart: always
services:
  a:
    <<: *common
    image: nginx
    command: ["sleep", "inf"]
    environment: {A: 1}
    depends_on: [b]
    volumes: [".:/x"]
  b:
    <<: *common
networks:
  n: {x-note: hi}
volumes: {data: {}}
`);
    expect(p.containers.map((c) => c.attachments)).toEqual([
      [{ network: 'demo_n', aliases: ['a'] }],
      [{ network: 'demo_n', aliases: ['b'] }],
    ]);
  });
});

describe('against a daemon state', () => {
  const up = (s: State, p: ComposePlan): void => {
    checkPlan(p, s);
    for (const n of p.networks) if (!n.external && !s.networks().some((x) => x.name === n.name)) s.createNetwork(n.spec);
    for (const c of p.containers) {
      const spec = containerSpec(c);
      if (!spec) continue;
      s.createContainer(spec);
      for (const a of c.attachments.slice(1)) s.connect(a.network, c.name, { ip: a.ip, aliases: a.aliases });
    }
  };
  it('a plan applies to State as planned, and down lists it in removal order', () => {
    const s = mkState();
    const p = plan(fixture('frontend-backend.yml'));
    up(s, p);
    const app = s.findContainer('demo-app-1');
    expect(app.endpoints.map((e) => [e.network, e.ifname, e.aliases])).toEqual([
      ['demo_frontend_network', 'eth0', ['app']],
      ['demo_backend_network', 'eth1', ['app']],
    ]);
    expect(s.findNetwork('demo_backend_network').labels).toEqual(netLabels('backend_network'));
    s.createContainer({ name: 'outsider', network: 'demo_frontend_network' });
    const down = downPlan('demo', s);
    expect(down).toEqual({ containers: ['demo-db-1', 'demo-app-1', 'demo-web-1'], networks: ['demo_backend_network', 'demo_frontend_network'] });
    expect(downPlan('demo', s, p)).toEqual(down);
    expect(downPlan('other', s)).toEqual({ containers: [], networks: [] });
    // up again: the project's containers are recreated, its networks reused
    expect(() => checkPlan(p, s)).not.toThrow();
  });
  it('checkPlan reports what the daemon would refuse, and changes nothing', () => {
    const s = mkState();
    s.createNetwork({ name: 'taken', subnet: '10.9.0.0/16' });
    s.createContainer({ name: 'demo-web-1x', network: 'bridge', ports: [{ hostPort: 8080, containerPort: 80 }] });
    const before = JSON.stringify(s.toJSON());
    expect(() => checkPlan(plan('services: {a: {networks: [n]}}\nnetworks:\n  n: {ipam: {config: [{subnet: 10.9.1.0/24}]}}'), s)).toThrow(
      new Error('compose.yml: networks.n: subnet 10.9.1.0/24 overlaps with network "taken" (10.9.0.0/16)'),
    );
    expect(() => checkPlan(plan('services: {a: {ports: ["8080:80"]}}'), s)).toThrow(
      new Error('compose.yml: services.a: Bind for 0.0.0.0:8080 failed: port is already allocated'),
    );
    expect(() => checkPlan(plan('services: {a: {networks: [n]}}\nnetworks:\n  n: {name: taken}'), s)).toThrow(
      new Error('compose.yml: networks.n: network taken was found but has incorrect label com.docker.compose.network set to ""'),
    );
    expect(() => checkPlan(plan(fixture('external.yml')), s)).toThrow('declared as external, but could not be found');
    expect(JSON.stringify(s.toJSON())).toBe(before);
  });
});

describe('loadCompose', () => {
  it('finds the default file names and reports missing files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-compose-'));
    const sub = join(dir, 'My_Project');
    mkdirSync(sub);
    writeFileSync(join(sub, 'docker-compose.yml'), 'services: {a: {}}\n');
    await expect(loadCompose(join(sub, 'compose.yml'))).rejects.toThrow(`${join(sub, 'compose.yml')}: no such file`);
    expect(findComposeFile(sub)).toBe('docker-compose.yml');
    writeFileSync(join(sub, 'compose.yaml'), 'services: {a: {}}\n');
    expect(findComposeFile(sub)).toBe('compose.yaml');
    expect(() => findComposeFile(dir)).toThrow('no configuration file provided: not found');
    const p = await loadCompose(join(sub, 'docker-compose.yml'));
    expect(p.project).toBe('my_project');
    expect(p.networks[0]!.name).toBe('my_project_default');
  });
});

describe('names that fit the daemon (64 characters)', () => {
  it('refuses a long container_name, network name or project in the file, naming the key', () => {
    const long = 'x'.repeat(65);
    expect(() => plan(`services:\n  a:\n    container_name: ${long}\n`)).toThrow(`compose.yml: services.a.container_name: container name "${'x'.repeat(24)}…" is longer than 64 characters`);
    expect(() => plan(`services:\n  a:\n    networks: [n]\nnetworks:\n  n:\n    name: ${long}\n`)).toThrow(`compose.yml: networks.n.name: network name "${'x'.repeat(24)}…" is longer than 64 characters`);
    expect(() => plan('services: {a: {}}', 'p'.repeat(55))).toThrow(`compose.yml: name: project name "${'p'.repeat(24)}…" is longer than 54 characters`);
    expect(plan('services: {a: {}}', 'p'.repeat(54)).containers[0]!.name).toBe(`${'p'.repeat(54)}-a-1`);
  });
});
