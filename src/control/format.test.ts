import { describe, expect, it } from 'vitest';
import { formatTable, inspectContainer, inspectNetwork, networkLsTable, psTable } from './format.js';
import { State } from './model.js';

function ids(): () => string {
  let n = 0;
  return () => {
    n++;
    const h = n.toString(16).padStart(4, '0');
    return `${h}${'ab'.repeat(4)}${h}`.padEnd(64, 'c');
  };
}

function fixture(): State {
  let t = 0;
  const s = new State({ newId: ids(), now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, t++)) });
  s.createNetwork({ name: 'frontend', subnet: '10.1.0.0/24', ipRange: '10.1.0.128/25', labels: { tier: 'web' } });
  s.createNetwork({ name: 'backend' });
  s.createContainer({ name: 'web', network: 'frontend', aliases: ['www'], ports: [{ containerPort: 80, hostPort: 8080 }] });
  s.createContainer({ name: 'db', network: 'backend', ip: undefined });
  s.connect('backend', 'web', { aliases: ['api'] });
  s.createContainer({ name: 'old', network: 'bridge' });
  s.createContainer({ name: 'hosty', network: 'host' });
  return s;
}

describe('inspectNetwork', () => {
  it('is shaped like docker network inspect', () => {
    const s = fixture();
    const n = s.findNetwork('frontend');
    const web = s.findContainer('web');
    expect(inspectNetwork(n, s.containers())).toEqual({
      Name: 'frontend',
      Id: n.id,
      Created: n.created,
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: '10.1.0.0/24', Gateway: '10.1.0.1', IPRange: '10.1.0.128/25' }] },
      Internal: false,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: {
        [web.id]: {
          Name: 'web',
          EndpointID: web.endpoints[0]!.endpointId,
          MacAddress: '02:42:0a:01:00:80',
          IPv4Address: '10.1.0.128/24',
          IPv6Address: '',
        },
      },
      Options: {},
      Labels: { tier: 'web' },
    });
  });
  it('omits IPRange when there is none and lists every attached container', () => {
    const s = fixture();
    const out = inspectNetwork(s.findNetwork('backend'), s.containers());
    expect(out.IPAM.Config).toEqual([{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }]);
    expect(Object.values(out.Containers).map((c) => [c.Name, c.IPv4Address])).toEqual([
      ['web', '172.18.0.3/16'],
      ['db', '172.18.0.2/16'],
    ]);
  });
  it('built-ins: bridge options, host lists host-mode containers, none has no IPAM config', () => {
    const s = fixture();
    const bridge = inspectNetwork(s.findNetwork('bridge'), s.containers());
    expect(bridge.Options['com.docker.network.bridge.default_bridge']).toBe('true');
    expect(Object.values(bridge.Containers).map((c) => c.IPv4Address)).toEqual(['172.17.0.2/16']);
    const host = inspectNetwork(s.findNetwork('host'), s.containers());
    expect(host.Driver).toBe('host');
    expect(host.IPAM.Config).toEqual([]);
    expect(Object.values(host.Containers)).toEqual([{ Name: 'hosty', EndpointID: '', MacAddress: '', IPv4Address: '', IPv6Address: '' }]);
    const none = inspectNetwork(s.findNetwork('none'), s.containers());
    expect(none.Driver).toBe('null');
    expect(none.Containers).toEqual({});
  });
  it('is a JSON-safe copy', () => {
    const s = fixture();
    const out = inspectNetwork(s.findNetwork('frontend'), s.containers());
    out.Labels.x = 'y';
    expect(s.findNetwork('frontend').labels).toEqual({ tier: 'web' });
    expect(JSON.parse(JSON.stringify(out))).toEqual(out);
  });
});

describe('inspectContainer', () => {
  it('has NetworkSettings.Networks like docker inspect', () => {
    const s = fixture();
    const web = s.findContainer('web');
    const out = inspectContainer(web, s);
    expect(out.Name).toBe('/web');
    expect(out.Config.Hostname).toBe(web.id.slice(0, 12));
    expect(out.NetworkSettings.Ports).toEqual({ '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] });
    expect(out.NetworkSettings.IPAddress).toBe('');
    expect(Object.keys(out.NetworkSettings.Networks)).toEqual(['frontend', 'backend']);
    expect(out.NetworkSettings.Networks.frontend).toEqual({
      IPAMConfig: null,
      Links: null,
      Aliases: ['www'],
      MacAddress: '02:42:0a:01:00:80',
      DriverOpts: null,
      NetworkID: s.findNetwork('frontend').id,
      EndpointID: web.endpoints[0]!.endpointId,
      Gateway: '10.1.0.1',
      IPAddress: '10.1.0.128',
      IPPrefixLen: 24,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      DNSNames: ['web', 'www', web.id.slice(0, 12)],
    });
    expect(out.NetworkSettings.Networks.backend!.Aliases).toEqual(['api']);
    // a list of networks works as well as a State
    expect(inspectContainer(web, s.networks())).toEqual(out);
  });
  it('default bridge fills the legacy top-level fields and has no aliases/DNS names', () => {
    const s = fixture();
    const out = inspectContainer(s.findContainer('old'), s);
    expect(out.NetworkSettings).toMatchObject({ IPAddress: '172.17.0.2', Gateway: '172.17.0.1', IPPrefixLen: 16, MacAddress: '02:42:ac:11:00:02' });
    expect(out.NetworkSettings.Networks.bridge).toMatchObject({ Aliases: null, DNSNames: null });
  });
  it('static addresses show in IPAMConfig', () => {
    const s = fixture();
    s.createContainer({ name: 'fixed', network: 'frontend', ip: '10.1.0.9' });
    expect(inspectContainer(s.findContainer('fixed'), s).NetworkSettings.Networks.frontend!.IPAMConfig).toEqual({ IPv4Address: '10.1.0.9' });
  });
  it('host mode shows an empty host entry', () => {
    const s = fixture();
    const out = inspectContainer(s.findContainer('hosty'), s);
    expect(out.HostConfig.NetworkMode).toBe('host');
    expect(out.NetworkSettings.Networks).toEqual({
      host: expect.objectContaining({ IPAddress: '', MacAddress: '', NetworkID: s.findNetwork('host').id }),
    });
  });
});

describe('tables', () => {
  it('formatTable pads like the docker CLI (min 10, padding 3, last column free)', () => {
    expect(formatTable(['A', 'LONGER HEADER', 'Z'], [['x', 'y', 'zzz'], ['a-very-long-cell', '', '']])).toBe(
      ['A                  LONGER HEADER   Z', 'x                  y               zzz', 'a-very-long-cell'].join('\n'),
    );
  });
  it('network ls is sorted by name with 12-char ids', () => {
    const s = fixture();
    const id = (name: string): string => s.findNetwork(name).id.slice(0, 12);
    expect(networkLsTable(s.networks())).toBe(
      [
        'NETWORK ID     NAME       DRIVER    SCOPE',
        `${id('backend')}   backend    bridge    local`,
        `${id('bridge')}   bridge     bridge    local`,
        `${id('frontend')}   frontend   bridge    local`,
        `${id('host')}   host       host      local`,
        `${id('none')}   none       null      local`,
      ].join('\n'),
    );
  });
  it('ps lists newest first with networks, addresses and ports', () => {
    const s = fixture();
    const id = (name: string): string => s.findContainer(name).id.slice(0, 12);
    expect(psTable(s.containers())).toBe(
      [
        'CONTAINER ID   NAME      NETWORKS           IP ADDRESSES            PORTS',
        `${id('hosty')}   hosty     host`,
        `${id('old')}   old       bridge             172.17.0.2`,
        `${id('db')}   db        backend            172.18.0.2`,
        `${id('web')}   web       frontend,backend   10.1.0.128,172.18.0.3   0.0.0.0:8080->80/tcp`,
      ].join('\n'),
    );
  });
  it('empty tables are just the header', () => {
    expect(psTable([])).toBe('CONTAINER ID   NAME      NETWORKS   IP ADDRESSES   PORTS');
  });
});
