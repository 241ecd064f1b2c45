/**
 * Docker-shaped output for the CLI and API: `network inspect` / `inspect`
 * JSON objects and the aligned `network ls` / `ps` tables. Pure functions of
 * the model's records.
 *
 * Tables are laid out as the docker CLI's tabwriter does (minimum cell width
 * 10, padding 3, last column unpadded); `network ls` is sorted by name as the
 * docker CLI sorts it, `ps` newest first.
 */
import {
  type Container,
  type Endpoint,
  type Network,
  formatPortBinding,
  networkPrefixLen,
  shortId,
} from './model.js';

/** Where networks are looked up: a State, or a list of networks. */
export type NetworkSource = { networks(): readonly Network[] } | readonly Network[];

function listOf(src: NetworkSource): readonly Network[] {
  return Array.isArray(src) ? (src as readonly Network[]) : (src as { networks(): readonly Network[] }).networks();
}

export interface NetworkInspect {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string>; Config: Array<{ Subnet: string; Gateway: string; IPRange?: string }> };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/**
 * `docker network inspect` shape. `containers` may be every container: only
 * those attached are listed (host/none-mode containers under `host`/`none`,
 * with empty addresses, as Docker shows them).
 */
export function inspectNetwork(net: Network, containers: readonly Container[]): NetworkInspect {
  const config: NetworkInspect['IPAM']['Config'] = [];
  if (net.subnet !== null && net.gateway !== null) {
    const entry: { Subnet: string; Gateway: string; IPRange?: string } = { Subnet: net.subnet, Gateway: net.gateway };
    if (net.ipRange !== null) entry.IPRange = net.ipRange;
    config.push(entry);
  }
  const prefix = networkPrefixLen(net);
  const attached: NetworkInspect['Containers'] = {};
  for (const c of containers) {
    const ep = c.endpoints.find((e) => e.networkId === net.id);
    if (ep) {
      attached[c.id] = { Name: c.name, EndpointID: ep.endpointId, MacAddress: ep.mac, IPv4Address: `${ep.ip}/${prefix}`, IPv6Address: '' };
    } else if (net.builtin && ((net.driver === 'host' && c.networkMode === 'host') || (net.driver === 'null' && c.networkMode === 'none'))) {
      attached[c.id] = { Name: c.name, EndpointID: '', MacAddress: '', IPv4Address: '', IPv6Address: '' };
    }
  }
  return {
    Name: net.name,
    Id: net.id,
    Created: net.created,
    Scope: net.scope,
    Driver: net.driver,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: {}, Config: config },
    Internal: net.internal,
    Attachable: net.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: attached,
    Options: { ...net.options },
    Labels: { ...net.labels },
  };
}

export interface EndpointInspect {
  IPAMConfig: { IPv4Address: string } | null;
  Links: null;
  Aliases: string[] | null;
  MacAddress: string;
  DriverOpts: null;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  DNSNames: string[] | null;
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  Created: string;
  Config: { Hostname: string };
  HostConfig: { NetworkMode: string; PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> };
  NetworkSettings: {
    Ports: Record<string, Array<{ HostIp: string; HostPort: string }>>;
    Gateway: string;
    IPAddress: string;
    IPPrefixLen: number;
    MacAddress: string;
    Networks: Record<string, EndpointInspect>;
  };
}

function emptyEndpoint(net: Network | undefined): EndpointInspect {
  return {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: '',
    DriverOpts: null,
    NetworkID: net?.id ?? '',
    EndpointID: '',
    Gateway: '',
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
  };
}

function inspectEndpoint(c: Container, ep: Endpoint, net: Network | undefined): EndpointInspect {
  const userDefined = net !== undefined && !net.builtin;
  return {
    IPAMConfig: ep.staticIp ? { IPv4Address: ep.ip } : null,
    Links: null,
    Aliases: userDefined ? [...ep.aliases] : null,
    MacAddress: ep.mac,
    DriverOpts: null,
    NetworkID: ep.networkId,
    EndpointID: ep.endpointId,
    Gateway: net?.gateway ?? '',
    IPAddress: ep.ip,
    IPPrefixLen: net ? networkPrefixLen(net) : 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    // Docker ≥ 25: the names the embedded DNS answers for this endpoint.
    DNSNames: userDefined ? [c.name, ...ep.aliases.filter((a) => a !== c.name), shortId(c.id)] : null,
  };
}

/** `docker inspect` shape, reduced to what concerns networking. */
export function inspectContainer(c: Container, networks: NetworkSource): ContainerInspect {
  const all = listOf(networks);
  const nets: Record<string, EndpointInspect> = {};
  if (c.networkMode === 'host' || c.networkMode === 'none') {
    nets[c.networkMode] = emptyEndpoint(all.find((n) => n.builtin && n.name === c.networkMode));
  }
  for (const ep of c.endpoints) nets[ep.network] = inspectEndpoint(c, ep, all.find((n) => n.id === ep.networkId));
  const ports: ContainerInspect['NetworkSettings']['Ports'] = {};
  for (const p of c.ports) {
    (ports[`${p.containerPort}/${p.proto}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  }
  const legacy = nets['bridge'];
  return {
    Id: c.id,
    Name: `/${c.name}`,
    Created: c.created,
    Config: { Hostname: c.hostname },
    HostConfig: {
      NetworkMode: c.networkMode === 'default' ? (c.endpoints[0]?.network ?? 'default') : c.networkMode === 'container' ? `container:${c.sharesWith}` : c.networkMode,
      PortBindings: structuredClone(ports),
    },
    NetworkSettings: {
      Ports: ports,
      // Legacy top-level fields: the default bridge's endpoint, as in Docker.
      Gateway: legacy?.Gateway ?? '',
      IPAddress: legacy?.IPAddress ?? '',
      IPPrefixLen: legacy?.IPPrefixLen ?? 0,
      MacAddress: legacy?.MacAddress ?? '',
      Networks: nets,
    },
  };
}

/**
 * Lay out rows like Go's tabwriter(minwidth 10, padding 3): every column but
 * the last is padded to max(widest cell + 3, 10).
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(10, ...all.map((r) => (r[i] ?? '').length + 3)));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

/** `docker network ls`: NETWORK ID (12 hex), NAME, DRIVER, SCOPE; sorted by name. */
export function networkLsTable(nets: readonly Network[]): string {
  const sorted = [...nets].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return formatTable(
    ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'],
    sorted.map((n) => [shortId(n.id), n.name, n.driver, n.scope]),
  );
}

/**
 * `ps`: CONTAINER ID, NAME, NETWORKS, IP ADDRESSES, PORTS — newest first.
 * Networks and addresses are listed in interface order (eth0, eth1, …);
 * host/none containers show their mode and no address.
 */
export function psTable(containers: readonly Container[]): string {
  const sorted = containers
    .map((c, i) => ({ c, i }))
    .sort((a, b) => (a.c.created < b.c.created ? 1 : a.c.created > b.c.created ? -1 : b.i - a.i))
    .map((x) => x.c);
  const ifIndex = (e: Endpoint): number => Number(e.ifname.slice(3));
  return formatTable(
    ['CONTAINER ID', 'NAME', 'NETWORKS', 'IP ADDRESSES', 'PORTS'],
    sorted.map((c) => {
      const eps = [...c.endpoints].sort((a, b) => ifIndex(a) - ifIndex(b));
      const networks = c.networkMode === 'default' ? eps.map((e) => e.network).join(',') : c.networkMode === 'container' ? `container:${c.sharesWith!.slice(0, 12)}` : c.networkMode;
      return [shortId(c.id), c.name, networks, eps.map((e) => e.ip).join(','), c.ports.map(formatPortBinding).join(', ')];
    }),
  );
}
