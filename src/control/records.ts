/**
 * The state model's records: networks, containers, endpoints and published
 * ports (frozen plain objects), their constants, and the rules that apply to
 * one record at a time (names, hostnames, aliases, options, -p specs).
 * State (model.ts) combines them; state-file.ts checks a stored copy.
 */
import { ENCRYPTED_OVERLAY_MTU } from '../overlay/seal.js';
import { VXLAN_OVERHEAD } from '../wire/vxlan.js';
import { randomBytes } from 'node:crypto';
import {
  type ExistingSubnet,
  type IpamConfig,
  gatewayMac,
  ipamConfigFromStrings,
  isIp,
  parseCidr,
} from '../services/ipam.js';
export type Driver = 'bridge' | 'host' | 'null' | 'overlay' | 'macvlan' | 'ipvlan';
export const DRIVERS: readonly Driver[] = ['bridge', 'host', 'null', 'overlay', 'macvlan', 'ipvlan'];

export interface Network {
  readonly id: string;
  readonly name: string;
  readonly driver: Driver;
  /** 'swarm': an overlay network shared through the cluster (etcd) */
  readonly scope: 'local' | 'swarm';
  /** CIDR, e.g. "172.18.0.0/16"; null for host/none. */
  readonly subnet: string | null;
  readonly gateway: string | null;
  readonly ipRange: string | null;
  /** usernet's MAC for the gateway (02:75:6e + id bytes; stable across restarts). */
  readonly gatewayMac: string;
  /** The user gave --subnet (Docker allows --ip only then). */
  readonly userSubnet: boolean;
  readonly internal: boolean;
  readonly attachable: boolean;
  readonly options: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  /** ISO 8601. */
  readonly created: string;
  /** bridge, host, none. */
  readonly builtin: boolean;
}

export interface Endpoint {
  /** Network name. */
  readonly network: string;
  readonly networkId: string;
  readonly endpointId: string;
  /** Dotted quad; the prefix length is the network's. */
  readonly ip: string;
  /** The address was requested (--ip / ipv4_address), not allocated. */
  readonly staticIp: boolean;
  readonly mac: string;
  readonly aliases: readonly string[];
  /** eth0, eth1, … (lowest free index when connected). */
  readonly ifname: string;
}

/** 'container': shares another container's network namespace (`--network container:NAME`, compose `network_mode: service:NAME`). */
export type NetworkMode = 'default' | 'host' | 'none' | 'container';

export interface PortBinding {
  /** "0.0.0.0" for all addresses. */
  readonly hostIp: string;
  /** Always concrete once stored (a requested 0 is replaced by a free port). */
  readonly hostPort: number;
  readonly containerPort: number;
  readonly proto: 'tcp' | 'udp';
}

export interface Container {
  readonly id: string;
  readonly name: string;
  /** '' in host mode (the host's own name). */
  readonly hostname: string;
  readonly networkMode: NetworkMode;
  /** networkMode 'container': the id of the container whose namespace this one shares */
  readonly sharesWith?: string;
  readonly endpoints: readonly Endpoint[];
  readonly ports: readonly PortBinding[];
  readonly created: string;
}

export interface NetworkSpec {
  name: string;
  /** 'swarm' for overlay networks shared through the cluster */
  scope?: 'local' | 'swarm';
  driver?: string;
  subnet?: string | null;
  gateway?: string | null;
  ipRange?: string | null;
  internal?: boolean;
  attachable?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface ContainerSpec {
  name: string;
  /** 'bridge' (default), 'host', 'none' or a user network (name or id prefix). */
  network?: string;
  ip?: string | null;
  aliases?: readonly string[];
  hostname?: string | null;
  mac?: string | null;
  /** Host port 0 = pick a free one (lowest from EPHEMERAL_PORTS). */
  ports?: readonly PortBindingSpec[];
}

export interface PortBindingSpec {
  hostIp?: string;
  hostPort?: number;
  containerPort: number;
  proto?: 'tcp' | 'udp';
}

export interface ConnectOptions {
  ip?: string | null;
  aliases?: readonly string[];
}

export interface Attachment {
  readonly container: Container;
  readonly endpoint: Endpoint;
  readonly network: Network;
}

export interface StateJSON {
  version: typeof STATE_VERSION;
  networks: Network[];
  containers: Container[];
}

export interface StateOptions {
  /** 64 hex chars; default crypto-random. */
  newId?: () => string;
  /** Default: the wall clock. */
  now?: () => Date;
  /** Drivers createNetwork accepts; the rest are "not supported yet". */
  supportedDrivers?: readonly Driver[];
  /**
   * Subnets of the daemon's own links (uplink, host link): no network routed
   * by usernet (bridge, overlay) may overlap them, nor may the default pools
   * hand them out. The special-purpose ranges are refused for every driver.
   */
  reserved?: readonly ExistingSubnet[];
}

export const STATE_VERSION = 1;
export const MTU_OPTION = 'com.docker.network.driver.mtu';
export const ICC_OPTION = 'com.docker.network.bridge.enable_icc';
export const MASQ_OPTION = 'com.docker.network.bridge.enable_ip_masquerade';
export const HOST_BINDING_OPTION = 'com.docker.network.bridge.host_binding_ipv4';
export const DEFAULT_BRIDGE_OPTION = 'com.docker.network.bridge.default_bridge';
export const DEFAULT_MTU = 1500;
export const BUILTIN_NETWORKS = ['bridge', 'host', 'none'] as const;
/** Host ports picked for `-p PORT` (Linux's default ip_local_port_range). */
export const EPHEMERAL_PORTS = { first: 32768, last: 60999 } as const;
/** Docker's warning when -p is given with --network host. */
export const HOST_MODE_PORTS_WARNING = 'Published ports are discarded when using host network mode';

export const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
export const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const HOSTNAME_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
export const ALIAS_LABEL = /^[a-zA-Z0-9_]([a-zA-Z0-9_-]*[a-zA-Z0-9_])?$/;

export function randomId(): string {
  // Docker regenerates ids whose 12-char short form is all digits.
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^[0-9]{12}/.test(id)) return id;
  }
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}

/** Bridge-like drivers: they have a subnet, endpoints and addresses. */
export function hasAddressing(n: Network): boolean {
  return n.subnet !== null;
}

/** The IPAM config of a network with a subnet (throws for host/none). */
export function networkIpam(n: Network): IpamConfig {
  if (n.subnet === null || n.gateway === null) throw new Error(`network ${n.name} has no IPAM configuration`);
  return ipamConfigFromStrings(n.subnet, n.gateway, n.ipRange);
}

export function networkPrefixLen(n: Network): number {
  return n.subnet === null ? 0 : parseCidr(n.subnet).prefix;
}

/** `-o usernet.offload=on|off`: super-frames (TSO, checksum offload) on this network's TAPs (default: the daemon's --offload). */
export const OFFLOAD_OPTION = 'usernet.offload';

export function validateOffloadOption(opts: Record<string, string>): void {
  const v = opts[OFFLOAD_OPTION];
  if (v !== undefined && !['on', 'off', 'true', 'false'].includes(v)) throw new Error(`invalid option ${OFFLOAD_OPTION}="${v}": must be on or off`);
}

/** false when the network turns offloads off; undefined = the daemon's default. */
export function networkOffload(n: Network): boolean | undefined {
  const v = n.options[OFFLOAD_OPTION];
  return v === undefined ? undefined : v === 'on' || v === 'true';
}

export function networkMtu(n: Network): number {
  const v = n.options[MTU_OPTION];
  if (v !== undefined) return Number(v);
  if (n.driver === 'overlay') return isEncrypted(n) ? ENCRYPTED_OVERLAY_MTU : DEFAULT_MTU - VXLAN_OVERHEAD;
  return DEFAULT_MTU;
}

/** An overlay network with `-o encrypted` (AES-GCM between daemons). */
export function isEncrypted(n: Network): boolean {
  const v = n.options.encrypted;
  return v !== undefined && v !== 'false';
}

/** Inter-container communication allowed (enable_icc is not "false"). */
export function networkIcc(n: Network): boolean {
  return n.options[ICC_OPTION] !== 'false';
}

export function isDefaultBridge(n: Network): boolean {
  return n.builtin && n.name === 'bridge';
}

/** User-defined bridge-like networks: embedded DNS, aliases, --ip. */
export function isUserDefined(n: Network): boolean {
  return !n.builtin;
}

/**
 * The endpoint outbound traffic leaves through: the first non-internal
 * network in lexical order of network name (null if none).
 */
export function outboundEndpoint(c: Container, networks: (id: string) => Network | undefined): Endpoint | null {
  let best: Endpoint | null = null;
  for (const ep of c.endpoints) {
    const n = networks(ep.networkId);
    if (!n || n.internal) continue;
    if (best === null || ep.network < best.network) best = ep;
  }
  return best;
}

/**
 * Parse a `-p` value: `[IP:][HOSTPORT:]PORT[/tcp|/udp]`. A missing host port
 * is 0 (the state picks one).
 */
export function parsePublish(s: string): PortBindingSpec {
  const bad = (why: string): Error => new Error(`invalid publish spec "${s}": ${why}`);
  if (typeof s !== 'string' || s === '') throw bad('empty');
  let rest = s;
  let proto: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp') throw bad(`protocol must be tcp or udp, not "${rest.slice(slash + 1)}"`);
    proto = p;
    rest = rest.slice(0, slash);
  }
  if (rest.startsWith('[')) throw bad('IPv6 host addresses are not supported');
  const parts = rest.split(':');
  if (parts.length > 3) throw bad('expected [IP:][HOSTPORT:]PORT[/tcp|/udp]');
  const port = (v: string, what: string, allowEmpty: boolean): number => {
    if (v === '' && allowEmpty) return 0;
    if (v.includes('-')) throw bad('port ranges are not supported');
    if (!/^[0-9]{1,5}$/.test(v)) throw bad(`${what} "${v}" is not a number`);
    const n = Number(v);
    if (n < 1 || n > 65535) throw bad(`${what} ${n} is out of range 1-65535`);
    return n;
  };
  const containerPort = port(parts[parts.length - 1]!, 'container port', false);
  const hostPort = parts.length >= 2 ? port(parts[parts.length - 2]!, 'host port', true) : 0;
  let hostIp = '0.0.0.0';
  if (parts.length === 3) {
    if (parts[0] !== '') {
      if (!isIp(parts[0]!)) throw bad(`host address "${parts[0]}" is not an IPv4 address`);
      hostIp = parts[0]!;
    }
  }
  return { hostIp, hostPort, containerPort, proto };
}

/** `0.0.0.0:8080->80/tcp`, as in `docker ps`. */
export function formatPortBinding(p: PortBinding): string {
  return `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.proto}`;
}

// ---------------------------------------------------------------- validation

export function validateHostname(h: string): void {
  const bad = (why: string): Error => new Error(`invalid hostname "${h}": ${why}`);
  if (h.length > 64) throw bad('longer than 64 characters');
  for (const label of h.split('.')) {
    if (label.length === 0 || label.length > 63 || !HOSTNAME_LABEL.test(label)) {
      throw bad('only letters, digits, "-" and "." are allowed, and a label may not start or end with "-"');
    }
  }
}

export function validateAlias(a: string): void {
  const bad = new Error(`invalid alias "${a}": only letters, digits, "-", "_" and "." are allowed`);
  if (typeof a !== 'string' || a.length === 0 || a.length > 253) throw bad;
  for (const label of a.split('.')) if (label.length === 0 || label.length > 63 || !ALIAS_LABEL.test(label)) throw bad;
}

export function normaliseAliases(aliases: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const a of aliases ?? []) {
    validateAlias(a);
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

export function validateRecord(r: Record<string, string> | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (r === undefined) return out;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new Error(`invalid ${what}: expected KEY=VALUE pairs`);
  for (const [k, v] of Object.entries(r)) {
    if (k === '' || /[\s=]/.test(k)) throw new Error(`invalid ${what} key "${k}"`);
    if (typeof v !== 'string') throw new Error(`invalid ${what} ${k}: value must be a string`);
    out[k] = v;
  }
  return out;
}

export function validateBridgeOptions(opts: Record<string, string>): void {
  const mtu = opts[MTU_OPTION];
  if (mtu !== undefined) {
    if (!/^[0-9]+$/.test(mtu) || Number(mtu) < 68 || Number(mtu) > 65535) {
      throw new Error(`invalid option ${MTU_OPTION}="${mtu}": must be an integer from 68 to 65535`);
    }
  }
  for (const key of [ICC_OPTION, MASQ_OPTION]) {
    const v = opts[key];
    if (v !== undefined && v !== 'true' && v !== 'false') {
      throw new Error(`invalid option ${key}="${v}": must be true or false`);
    }
  }
  validateOffloadOption(opts);
  const hb = opts[HOST_BINDING_OPTION];
  if (hb !== undefined && !isIp(hb)) {
    throw new Error(`invalid option ${HOST_BINDING_OPTION}="${hb}": must be an IPv4 address`);
  }
  if (opts[DEFAULT_BRIDGE_OPTION] !== undefined) {
    throw new Error(`option ${DEFAULT_BRIDGE_OPTION} is reserved for the default bridge network`);
  }
}

export function freeze<T extends object>(o: T): T {
  return Object.freeze(o);
}

export function makeEndpoint(e: Endpoint): Endpoint {
  return freeze({ ...e, aliases: freeze([...e.aliases]) });
}

export function makeContainer(c: Container): Container {
  return freeze({ ...c, endpoints: freeze(c.endpoints.map(makeEndpoint)), ports: freeze(c.ports.map((p) => freeze({ ...p }))) });
}

export function makeNetwork(n: Network): Network {
  return freeze({ ...n, options: freeze({ ...n.options }), labels: freeze({ ...n.labels }) });
}

export function withGatewayMac(n: Omit<Network, 'gatewayMac'>): Network {
  return makeNetwork({ ...n, gatewayMac: gatewayMac(n.id) });
}

// --------------------------------------------------------------------- State

