/**
 * The daemon's state model: networks, containers and their endpoints, with
 * every rule a user can break checked here. Pure — no I/O; ids and the clock
 * are injected so tests are deterministic.
 *
 * Every mutating method either succeeds or throws an Error whose message is
 * the one-line user-facing error, leaving the state exactly as it was: each
 * one validates everything first and only then swaps in new (immutable)
 * records. Records handed out (Network, Container, Endpoint) are frozen
 * snapshots; a later change replaces them, it never mutates them.
 *
 * Persisted with `toJSON()` / `State.fromJSON()` (a versioned plain object).
 *
 * Docker rules mirrored here:
 * - names: containers `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; networks the same rule
 *   but one character is enough;
 * - `bridge`, `host`, `none` are built in and can be neither created nor
 *   removed; `default` is reserved too;
 * - `--ip` only on user-defined networks whose subnet the user configured;
 *   aliases only on user-defined networks;
 * - host/none containers have no endpoints, cannot be connected or
 *   disconnected, and take no --ip/--alias/--mac-address; their published
 *   ports are dropped (the daemon prints HOST_MODE_PORTS_WARNING for host);
 * - a network with endpoints cannot be removed; prune removes every
 *   user-defined network without endpoints;
 * - lookups accept a name, a full id or an unambiguous id prefix.
 */
import { randomBytes } from 'node:crypto';
import {
  type Cidr,
  type IpamConfig,
  allocateAddress,
  checkRequestedAddress,
  cidrsOverlap,
  formatCidr,
  formatIp,
  gatewayMac,
  ipamConfigFromStrings,
  isIp,
  macFromIp,
  parseCidr,
  parseIp,
  parseMac,
  resolveIpamConfig,
  DEFAULT_BRIDGE_GATEWAY,
  DEFAULT_BRIDGE_SUBNET,
} from '../services/ipam.js';

export type Driver = 'bridge' | 'host' | 'null' | 'overlay' | 'macvlan' | 'ipvlan';
export const DRIVERS: readonly Driver[] = ['bridge', 'host', 'null', 'overlay', 'macvlan', 'ipvlan'];

export interface Network {
  readonly id: string;
  readonly name: string;
  readonly driver: Driver;
  readonly scope: 'local';
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

export type NetworkMode = 'default' | 'host' | 'none';

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
  readonly endpoints: readonly Endpoint[];
  readonly ports: readonly PortBinding[];
  readonly created: string;
}

export interface NetworkSpec {
  name: string;
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

const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const HOSTNAME_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const ALIAS_LABEL = /^[a-zA-Z0-9_]([a-zA-Z0-9_-]*[a-zA-Z0-9_])?$/;

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

export function networkMtu(n: Network): number {
  const v = n.options[MTU_OPTION];
  return v === undefined ? DEFAULT_MTU : Number(v);
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

function validateHostname(h: string): void {
  const bad = (why: string): Error => new Error(`invalid hostname "${h}": ${why}`);
  if (h.length > 64) throw bad('longer than 64 characters');
  for (const label of h.split('.')) {
    if (label.length === 0 || label.length > 63 || !HOSTNAME_LABEL.test(label)) {
      throw bad('only letters, digits, "-" and "." are allowed, and a label may not start or end with "-"');
    }
  }
}

function validateAlias(a: string): void {
  const bad = new Error(`invalid alias "${a}": only letters, digits, "-", "_" and "." are allowed`);
  if (typeof a !== 'string' || a.length === 0 || a.length > 253) throw bad;
  for (const label of a.split('.')) if (label.length === 0 || label.length > 63 || !ALIAS_LABEL.test(label)) throw bad;
}

function normaliseAliases(aliases: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const a of aliases ?? []) {
    validateAlias(a);
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

function validateRecord(r: Record<string, string> | undefined, what: string): Record<string, string> {
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

function validateBridgeOptions(opts: Record<string, string>): void {
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
  const hb = opts[HOST_BINDING_OPTION];
  if (hb !== undefined && !isIp(hb)) {
    throw new Error(`invalid option ${HOST_BINDING_OPTION}="${hb}": must be an IPv4 address`);
  }
  if (opts[DEFAULT_BRIDGE_OPTION] !== undefined) {
    throw new Error(`option ${DEFAULT_BRIDGE_OPTION} is reserved for the default bridge network`);
  }
}

function freeze<T extends object>(o: T): T {
  return Object.freeze(o);
}

function makeEndpoint(e: Endpoint): Endpoint {
  return freeze({ ...e, aliases: freeze([...e.aliases]) });
}

function makeContainer(c: Container): Container {
  return freeze({ ...c, endpoints: freeze(c.endpoints.map(makeEndpoint)), ports: freeze(c.ports.map((p) => freeze({ ...p }))) });
}

function makeNetwork(n: Network): Network {
  return freeze({ ...n, options: freeze({ ...n.options }), labels: freeze({ ...n.labels }) });
}

function withGatewayMac(n: Omit<Network, 'gatewayMac'>): Network {
  return makeNetwork({ ...n, gatewayMac: gatewayMac(n.id) });
}

// --------------------------------------------------------------------- State

export class State {
  private nets: Network[] = [];
  private ctrs: Container[] = [];
  private readonly newId: () => string;
  private readonly now: () => Date;
  private readonly supported: ReadonlySet<Driver>;

  constructor(opts: StateOptions = {}) {
    this.newId = opts.newId ?? randomId;
    this.now = opts.now ?? (() => new Date());
    this.supported = new Set(opts.supportedDrivers ?? ['bridge']);
    const created = this.now().toISOString();
    const base = { scope: 'local' as const, internal: false, attachable: false, labels: {}, created, builtin: true, userSubnet: false };
    this.nets = [
      withGatewayMac({
        ...base,
        id: this.freshId(),
        name: 'bridge',
        driver: 'bridge',
        subnet: formatCidr(DEFAULT_BRIDGE_SUBNET),
        gateway: formatIp(DEFAULT_BRIDGE_GATEWAY),
        ipRange: null,
        options: {
          [DEFAULT_BRIDGE_OPTION]: 'true',
          [ICC_OPTION]: 'true',
          [MASQ_OPTION]: 'true',
          [MTU_OPTION]: String(DEFAULT_MTU),
        },
      }),
      withGatewayMac({ ...base, id: this.freshId(), name: 'host', driver: 'host', subnet: null, gateway: null, ipRange: null, options: {} }),
      withGatewayMac({ ...base, id: this.freshId(), name: 'none', driver: 'null', subnet: null, gateway: null, ipRange: null, options: {} }),
    ];
  }

  // ------------------------------------------------------------ queries

  /** All networks, built-ins first, then in creation order. */
  networks(): readonly Network[] {
    return this.nets;
  }

  /** All containers in creation order. */
  containers(): readonly Container[] {
    return this.ctrs;
  }

  /** Name, full id, or unambiguous id prefix; throws `network X not found`. */
  findNetwork(ref: string): Network {
    const n = this.lookupNetwork(ref);
    if (!n) throw new Error(`network ${ref} not found`);
    return n;
  }

  /** Like findNetwork, but undefined when there is no such network (still throws when ambiguous). */
  lookupNetwork(ref: string): Network | undefined {
    return lookup(this.nets, ref, 'network');
  }

  networkById(id: string): Network | undefined {
    return this.nets.find((n) => n.id === id);
  }

  /** Name, full id, or unambiguous id prefix; throws `No such container: X`. */
  findContainer(ref: string): Container {
    const c = this.lookupContainer(ref);
    if (!c) throw new Error(`No such container: ${ref}`);
    return c;
  }

  lookupContainer(ref: string): Container | undefined {
    return lookup(this.ctrs, ref.startsWith('/') ? ref.slice(1) : ref, 'container');
  }

  /** Containers with an endpoint on the network. */
  containersOn(network: Network): Container[] {
    return this.ctrs.filter((c) => c.endpoints.some((e) => e.networkId === network.id));
  }

  /** Containers attached to the network, host/none-mode containers included. */
  attachedTo(network: Network): Container[] {
    if (network.builtin && network.driver === 'host') return this.ctrs.filter((c) => c.networkMode === 'host');
    if (network.builtin && network.driver === 'null') return this.ctrs.filter((c) => c.networkMode === 'none');
    return this.containersOn(network);
  }

  /** Addresses taken on a network (ascending uint32s): the allocator's state. */
  takenAddresses(network: Network): number[] {
    const out: number[] = [];
    for (const c of this.ctrs) for (const e of c.endpoints) if (e.networkId === network.id) out.push(parseIp(e.ip));
    return out.sort((a, b) => a - b);
  }

  // ------------------------------------------------------------ networks

  createNetwork(spec: NetworkSpec): Network {
    const name = spec.name;
    if (typeof name !== 'string' || name === '') throw new Error('network name is required');
    if ((BUILTIN_NETWORKS as readonly string[]).includes(name) || name === 'default') {
      throw new Error(`operation is not permitted on predefined ${name} network`);
    }
    if (!NETWORK_NAME.test(name)) {
      throw new Error(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    if (this.nets.some((n) => n.name === name)) throw new Error(`network with name ${name} already exists`);
    const driver = spec.driver || 'bridge';
    if (driver === 'host' || driver === 'null') throw new Error(`only one instance of "${driver}" network is allowed`);
    if (!(DRIVERS as readonly string[]).includes(driver)) {
      throw new Error(`driver "${driver}" not found (available: bridge, overlay, macvlan, ipvlan)`);
    }
    if (!this.supported.has(driver as Driver)) throw new Error(`driver ${driver} is not supported yet`);
    const options = validateRecord(spec.options, 'option');
    const labels = validateRecord(spec.labels, 'label');
    if (driver === 'bridge') validateBridgeOptions(options);
    const existing = this.nets
      .filter((n) => n.subnet !== null)
      .map((n) => ({ name: n.name, subnet: parseCidr(n.subnet!) }));
    const ipam = resolveIpamConfig({ subnet: spec.subnet, gateway: spec.gateway, ipRange: spec.ipRange }, existing);
    const net = withGatewayMac({
      id: this.freshId(),
      name,
      driver: driver as Driver,
      scope: 'local',
      subnet: formatCidr(ipam.subnet),
      gateway: formatIp(ipam.gateway),
      ipRange: ipam.ipRange ? formatCidr(ipam.ipRange) : null,
      userSubnet: spec.subnet != null && spec.subnet !== '',
      internal: spec.internal === true,
      attachable: spec.attachable === true,
      options,
      labels,
      created: this.now().toISOString(),
      builtin: false,
    });
    this.nets = [...this.nets, net];
    return net;
  }

  /** Remove by name or id prefix; returns the removed network. */
  removeNetwork(ref: string): Network {
    const n = this.findNetwork(ref);
    if (n.builtin) throw new Error(`${n.name} is a pre-defined network and cannot be removed`);
    if (this.containersOn(n).length > 0) {
      throw new Error(`error while removing network: network ${n.name} has active endpoints`);
    }
    this.nets = this.nets.filter((x) => x !== n);
    return n;
  }

  /** Remove every user-defined network without endpoints; returns them (creation order). */
  prune(): Network[] {
    const gone = this.nets.filter((n) => !n.builtin && this.containersOn(n).length === 0);
    this.nets = this.nets.filter((n) => !gone.includes(n));
    return gone;
  }

  // ---------------------------------------------------------- containers

  createContainer(spec: ContainerSpec): Container {
    const name = spec.name;
    if (typeof name !== 'string' || name === '') throw new Error('container name is required (--name)');
    if (!CONTAINER_NAME.test(name)) {
      throw new Error(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    const clash = this.ctrs.find((c) => c.name === name);
    if (clash) throw new Error(`the container name "${name}" is already in use by container ${shortId(clash.id)}`);
    const aliases = spec.aliases ?? [];
    const hasIp = spec.ip != null && spec.ip !== '';
    const hasMac = spec.mac != null && spec.mac !== '';
    const net = this.findNetwork(spec.network || 'bridge');
    let mode: NetworkMode = 'default';
    if (net.builtin && net.driver === 'host') mode = 'host';
    else if (net.builtin && net.driver === 'null') mode = 'none';
    if (mode !== 'default') {
      if (hasIp) throw new Error('user specified IP address is supported on user defined networks only');
      if (aliases.length > 0) throw new Error('network-scoped alias is supported only for containers in user defined networks');
      if (hasMac) throw new Error('conflicting options: mac-address and the network mode');
    }
    const id = this.freshId();
    let hostname: string;
    if (spec.hostname != null && spec.hostname !== '') {
      validateHostname(spec.hostname);
      hostname = spec.hostname;
    } else {
      hostname = mode === 'host' ? '' : shortId(id);
    }
    const mac = hasMac ? parseMac(spec.mac!) : null;
    const endpoints: Endpoint[] = [];
    if (mode === 'default') {
      endpoints.push(this.planEndpoint(net, [], { ip: spec.ip, aliases }, mac));
    }
    if (mode === 'default' && net.internal && (spec.ports ?? []).length > 0) {
      throw new Error(`ports cannot be published on internal network ${net.name}: it has no route in or out`);
    }
    const ports = mode === 'default' ? this.planPorts(spec.ports ?? []) : [];
    const c = makeContainer({ id, name, hostname, networkMode: mode, endpoints, ports, created: this.now().toISOString() });
    this.ctrs = [...this.ctrs, c];
    return c;
  }

  /** Remove by name or id prefix; returns the removed container. */
  removeContainer(ref: string): Container {
    const c = this.findContainer(ref);
    this.ctrs = this.ctrs.filter((x) => x !== c);
    return c;
  }

  /** Attach a container to a network; returns the updated container, the new endpoint and the network. */
  connect(networkRef: string, containerRef: string, opts: ConnectOptions = {}): Attachment {
    const net = this.findNetwork(networkRef);
    const c = this.findContainer(containerRef);
    if (c.networkMode === 'host' || (net.builtin && net.driver === 'host')) {
      throw new Error('container cannot be disconnected from host network or connected to host network');
    }
    if (c.networkMode === 'none' || (net.builtin && net.driver === 'null')) {
      throw new Error('container cannot be connected to multiple networks with one of the networks in private (none) mode');
    }
    if (c.endpoints.some((e) => e.networkId === net.id)) {
      throw new Error(`endpoint with name ${c.name} already exists in network ${net.name}`);
    }
    const ep = this.planEndpoint(net, c.endpoints, opts, null);
    const updated = makeContainer({ ...c, endpoints: [...c.endpoints, ep] });
    this.ctrs = this.ctrs.map((x) => (x === c ? updated : x));
    return { container: updated, endpoint: updated.endpoints[updated.endpoints.length - 1]!, network: net };
  }

  /** Detach a container from a network; returns the updated container, the removed endpoint and the network. */
  disconnect(networkRef: string, containerRef: string): Attachment {
    const net = this.findNetwork(networkRef);
    const c = this.findContainer(containerRef);
    if (c.networkMode === 'host' || (net.builtin && net.driver === 'host')) {
      throw new Error('container cannot be disconnected from host network or connected to host network');
    }
    const ep = c.endpoints.find((e) => e.networkId === net.id);
    if (!ep) throw new Error(`container ${c.name} is not connected to network ${net.name}`);
    const updated = makeContainer({ ...c, endpoints: c.endpoints.filter((e) => e !== ep) });
    this.ctrs = this.ctrs.map((x) => (x === c ? updated : x));
    return { container: updated, endpoint: ep, network: net };
  }

  // ------------------------------------------------------------ persistence

  toJSON(): StateJSON {
    // Records are frozen plain objects; a structured copy detaches them.
    return structuredClone({ version: STATE_VERSION, networks: [...this.nets], containers: [...this.ctrs] }) as StateJSON;
  }

  /**
   * Replace the whole state with a snapshot taken by `toJSON()` (rollback
   * after a failed side effect). Validated like `fromJSON`; on error the
   * state is unchanged.
   */
  restore(snapshot: StateJSON): void {
    const s = State.fromJSON(snapshot, { newId: this.newId, now: this.now, supportedDrivers: [...this.supported] });
    this.nets = s.nets;
    this.ctrs = s.ctrs;
  }

  /**
   * Rebuild a State from `toJSON()` output, checking its consistency. Missing
   * built-in networks are recreated.
   */
  static fromJSON(data: unknown, opts: StateOptions = {}): State {
    const s = new State(opts);
    const fail = (why: string): never => {
      throw new Error(`invalid state file: ${why}`);
    };
    if (typeof data !== 'object' || data === null) fail('not an object');
    const d = data as Partial<StateJSON>;
    if (d.version !== STATE_VERSION) fail(`unsupported version ${JSON.stringify(d.version)} (expected ${STATE_VERSION})`);
    if (!Array.isArray(d.networks) || !Array.isArray(d.containers)) fail('networks and containers must be arrays');
    const nets: Network[] = [];
    for (const raw of d.networks!) nets.push(checkNetwork(raw, fail));
    for (const b of s.nets) if (!nets.some((n) => n.builtin && n.name === b.name)) nets.push(b);
    const names = new Set<string>();
    const ids = new Set<string>();
    const subnets: { name: string; subnet: Cidr }[] = [];
    for (const n of nets) {
      if (names.has(n.name)) fail(`duplicate network name ${n.name}`);
      if (ids.has(n.id)) fail(`duplicate network id ${n.id}`);
      names.add(n.name);
      ids.add(n.id);
      if (n.subnet !== null) {
        const c = parseCidr(n.subnet);
        const o = subnets.find((x) => cidrsOverlap(x.subnet, c));
        if (o) fail(`subnet of network ${n.name} overlaps network ${o.name}`);
        subnets.push({ name: n.name, subnet: c });
      }
    }
    const ctrs: Container[] = [];
    const cnames = new Set<string>();
    const taken = new Set<string>();
    for (const raw of d.containers!) {
      const c = checkContainer(raw, fail);
      if (cnames.has(c.name)) fail(`duplicate container name ${c.name}`);
      cnames.add(c.name);
      if (ids.has(c.id)) fail(`duplicate id ${c.id}`);
      ids.add(c.id);
      for (const e of c.endpoints) {
        const n = nets.find((x) => x.id === e.networkId);
        if (!n || n.subnet === null) fail(`container ${c.name} is attached to unknown network ${e.networkId}`);
        if (n!.name !== e.network) fail(`container ${c.name}: endpoint network name ${e.network} does not match ${n!.name}`);
        const ip = parseIp(e.ip);
        const key = `${n!.id}/${ip}`;
        if (taken.has(key)) fail(`address ${e.ip} is used twice on network ${n!.name}`);
        try {
          checkRequestedAddress(networkIpam(n!), ip, new Set(), n!.name);
        } catch (err) {
          fail(`container ${c.name}: ${(err as Error).message}`);
        }
        taken.add(key);
      }
      ctrs.push(c);
    }
    s.nets = nets.map(makeNetwork);
    s.ctrs = ctrs.map(makeContainer);
    return s;
  }

  // ---------------------------------------------------------------- private

  private freshId(extra: readonly string[] = []): string {
    for (let i = 0; i < 100; i++) {
      const id = this.newId();
      if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`id generator returned a bad id "${id}"`);
      if (!this.nets.some((n) => n.id === id) && !this.ctrs.some((c) => c.id === id) && !extra.includes(id)) return id;
    }
    throw new Error('could not generate a unique id');
  }

  /** Validate and build an endpoint without changing any state. */
  private planEndpoint(
    net: Network,
    current: readonly Endpoint[],
    opts: ConnectOptions,
    mac: string | null,
  ): Endpoint {
    if (net.subnet === null) throw new Error(`network ${net.name} cannot hold endpoints`);
    const aliases = opts.aliases ?? [];
    const hasIp = opts.ip != null && opts.ip !== '';
    if (net.builtin) {
      if (hasIp) throw new Error('user specified IP address is supported on user defined networks only');
      if (aliases.length > 0) {
        throw new Error('network-scoped alias is supported only for containers in user defined networks');
      }
    }
    if (hasIp && !net.userSubnet) {
      throw new Error('user specified IP address is supported only when connecting to networks with user configured subnets');
    }
    const cleanAliases = normaliseAliases(aliases);
    const ipam = networkIpam(net);
    const taken = new Set(this.takenAddresses(net));
    let ip: number;
    if (hasIp) {
      ip = parseIp(opts.ip!, 'IP address');
      checkRequestedAddress(ipam, ip, taken, net.name);
    } else {
      ip = allocateAddress(ipam, taken, net.name);
    }
    if (mac !== null) {
      for (const c of this.ctrs) {
        for (const e of c.endpoints) {
          if (e.networkId === net.id && e.mac === mac) {
            throw new Error(`MAC address ${mac} is already in use on network ${net.name} (container ${c.name})`);
          }
        }
      }
    }
    let idx = 0;
    while (current.some((e) => e.ifname === `eth${idx}`)) idx++;
    return {
      network: net.name,
      networkId: net.id,
      endpointId: this.freshId(this.ctrs.flatMap((c) => c.endpoints.map((e) => e.endpointId))),
      ip: formatIp(ip),
      staticIp: hasIp,
      mac: mac ?? macFromIp(ip),
      aliases: cleanAliases,
      ifname: `eth${idx}`,
    };
  }

  /** Validate port bindings against each other and the state; pick host ports for 0. */
  private planPorts(specs: readonly PortBindingSpec[]): PortBinding[] {
    const out: PortBinding[] = [];
    const used = (): PortBinding[] => [...this.ctrs.flatMap((c) => c.ports), ...out];
    const clash = (a: { hostIp: string; proto: string }, port: number, b: PortBinding): boolean =>
      b.proto === a.proto && b.hostPort === port && (b.hostIp === a.hostIp || b.hostIp === '0.0.0.0' || a.hostIp === '0.0.0.0');
    for (const p of specs) {
      const proto = p.proto ?? 'tcp';
      const hostIp = p.hostIp === undefined || p.hostIp === '' ? '0.0.0.0' : p.hostIp;
      const hostPort = p.hostPort ?? 0;
      if (proto !== 'tcp' && proto !== 'udp') throw new Error(`invalid protocol "${String(proto)}": must be tcp or udp`);
      if (!isIp(hostIp)) throw new Error(`invalid host address "${hostIp}" for published port`);
      for (const [v, what, min] of [
        [p.containerPort, 'container port', 1],
        [hostPort, 'host port', 0],
      ] as const) {
        if (!Number.isInteger(v) || v < min || v > 65535) throw new Error(`invalid ${what} ${v}: out of range`);
      }
      const a = { hostIp, proto };
      let port = hostPort;
      if (port === 0) {
        port = EPHEMERAL_PORTS.first;
        while (port <= EPHEMERAL_PORTS.last && used().some((b) => clash(a, port, b))) port++;
        if (port > EPHEMERAL_PORTS.last) throw new Error('no free host port left to publish on');
      } else if (used().some((b) => clash(a, port, b))) {
        throw new Error(`Bind for ${hostIp}:${port} failed: port is already allocated`);
      }
      out.push({ hostIp, hostPort: port, containerPort: p.containerPort, proto });
    }
    return out;
  }
}

function lookup<T extends { id: string; name: string }>(items: readonly T[], ref: string, what: string): T | undefined {
  if (typeof ref !== 'string' || ref === '') return undefined;
  const byId = items.find((x) => x.id === ref);
  if (byId) return byId;
  const byName = items.find((x) => x.name === ref);
  if (byName) return byName;
  if (!/^[0-9a-f]+$/.test(ref)) return undefined;
  const matches = items.filter((x) => x.id.startsWith(ref));
  if (matches.length > 1) throw new Error(`${what} ${ref} is ambiguous (${matches.length} matches found based on ID prefix)`);
  return matches[0];
}

// ------------------------------------------------------- state-file checks

type Fail = (why: string) => never;

function str(o: Record<string, unknown>, k: string, fail: Fail, where: string): string {
  const v = o[k];
  if (typeof v !== 'string') fail(`${where}: ${k} must be a string`);
  return v as string;
}

function strOrNull(o: Record<string, unknown>, k: string, fail: Fail, where: string): string | null {
  const v = o[k];
  if (v !== null && typeof v !== 'string') fail(`${where}: ${k} must be a string or null`);
  return v as string | null;
}

function bool(o: Record<string, unknown>, k: string, fail: Fail, where: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') fail(`${where}: ${k} must be a boolean`);
  return v as boolean;
}

function rec(o: Record<string, unknown>, k: string, fail: Fail, where: string): Record<string, string> {
  const v = o[k];
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    fail(`${where}: ${k} must be an object of strings`);
  }
  return { ...(v as Record<string, string>) };
}

function obj(raw: unknown, fail: Fail, where: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${where} must be an object`);
  return raw as Record<string, unknown>;
}

function hexId(o: Record<string, unknown>, k: string, fail: Fail, where: string): string {
  const v = str(o, k, fail, where);
  if (!/^[0-9a-f]{64}$/.test(v)) fail(`${where}: ${k} must be 64 hex characters`);
  return v;
}

function checkNetwork(raw: unknown, fail: Fail): Network {
  const o = obj(raw, fail, 'network');
  const where = `network ${String(o.name)}`;
  const name = str(o, 'name', fail, where);
  if (!NETWORK_NAME.test(name)) fail(`${where}: bad name`);
  const driver = str(o, 'driver', fail, where) as Driver;
  if (!DRIVERS.includes(driver)) fail(`${where}: unknown driver ${driver}`);
  const subnet = strOrNull(o, 'subnet', fail, where);
  const gateway = strOrNull(o, 'gateway', fail, where);
  const ipRange = strOrNull(o, 'ipRange', fail, where);
  if ((subnet === null) !== (gateway === null)) fail(`${where}: subnet and gateway go together`);
  if (subnet !== null) {
    try {
      resolveIpamConfig({ subnet, gateway, ipRange }, []);
    } catch (err) {
      fail(`${where}: ${(err as Error).message}`);
    }
  } else if (ipRange !== null) fail(`${where}: ip-range without subnet`);
  if (o.scope !== 'local') fail(`${where}: scope must be local`);
  const id = hexId(o, 'id', fail, where);
  const gwMac = str(o, 'gatewayMac', fail, where);
  if (gwMac !== gatewayMac(id)) fail(`${where}: gatewayMac does not match the id`);
  return {
    id,
    gatewayMac: gwMac,
    name,
    driver,
    scope: 'local',
    subnet,
    gateway,
    ipRange,
    userSubnet: bool(o, 'userSubnet', fail, where),
    internal: bool(o, 'internal', fail, where),
    attachable: bool(o, 'attachable', fail, where),
    options: rec(o, 'options', fail, where),
    labels: rec(o, 'labels', fail, where),
    created: str(o, 'created', fail, where),
    builtin: bool(o, 'builtin', fail, where),
  };
}

function checkContainer(raw: unknown, fail: Fail): Container {
  const o = obj(raw, fail, 'container');
  const where = `container ${String(o.name)}`;
  const name = str(o, 'name', fail, where);
  if (!CONTAINER_NAME.test(name)) fail(`${where}: bad name`);
  const mode = str(o, 'networkMode', fail, where) as NetworkMode;
  if (!['default', 'host', 'none'].includes(mode)) fail(`${where}: bad networkMode`);
  if (!Array.isArray(o.endpoints)) fail(`${where}: endpoints must be an array`);
  if (!Array.isArray(o.ports)) fail(`${where}: ports must be an array`);
  const endpoints = (o.endpoints as unknown[]).map((r) => {
    const e = obj(r, fail, `${where}: endpoint`);
    const ip = str(e, 'ip', fail, where);
    if (!isIp(ip)) fail(`${where}: bad endpoint ip ${ip}`);
    const mac = str(e, 'mac', fail, where);
    try {
      parseMac(mac);
    } catch {
      fail(`${where}: bad endpoint mac ${mac}`);
    }
    if (!Array.isArray(e.aliases) || !e.aliases.every((a) => typeof a === 'string')) fail(`${where}: bad aliases`);
    const ifname = str(e, 'ifname', fail, where);
    if (!/^eth[0-9]+$/.test(ifname)) fail(`${where}: bad ifname ${ifname}`);
    return {
      network: str(e, 'network', fail, where),
      networkId: hexId(e, 'networkId', fail, where),
      endpointId: hexId(e, 'endpointId', fail, where),
      ip,
      staticIp: bool(e, 'staticIp', fail, where),
      mac,
      aliases: [...(e.aliases as string[])],
      ifname,
    };
  });
  if (mode !== 'default' && endpoints.length > 0) fail(`${where}: ${mode} mode container has endpoints`);
  if (new Set(endpoints.map((e) => e.ifname)).size !== endpoints.length) fail(`${where}: duplicate ifname`);
  if (new Set(endpoints.map((e) => e.networkId)).size !== endpoints.length) fail(`${where}: duplicate network`);
  const ports = (o.ports as unknown[]).map((r) => {
    const p = obj(r, fail, `${where}: port`);
    const hostIp = str(p, 'hostIp', fail, where);
    const proto = str(p, 'proto', fail, where);
    const hp = p.hostPort;
    const cp = p.containerPort;
    if (!isIp(hostIp) || (proto !== 'tcp' && proto !== 'udp')) fail(`${where}: bad port binding`);
    for (const v of [hp, cp]) if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) fail(`${where}: bad port`);
    return { hostIp, hostPort: hp as number, containerPort: cp as number, proto: proto as 'tcp' | 'udp' };
  });
  return {
    id: hexId(o, 'id', fail, where),
    name,
    hostname: str(o, 'hostname', fail, where),
    networkMode: mode,
    endpoints,
    ports,
    created: str(o, 'created', fail, where),
  };
}
