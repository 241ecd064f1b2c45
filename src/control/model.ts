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
import {
  type Cidr,
  type ExistingSubnet,
  SPECIAL_PURPOSE_RANGES,
  allocateAddress,
  checkRequestedAddress,
  cidrsOverlap,
  formatCidr,
  formatIp,
  isIp,
  macFromIp,
  parseCidr,
  parseIp,
  parseMac,
  resolveIpamConfig,
  OVERLAY_POOLS,
  DEFAULT_BRIDGE_GATEWAY,
  DEFAULT_BRIDGE_SUBNET,
} from '../services/ipam.js';
import {
  type Attachment,
  BUILTIN_NETWORKS,
  CONTAINER_NAME,
  type ConnectOptions,
  type Container,
  type ContainerSpec,
  DEFAULT_BRIDGE_OPTION,
  DEFAULT_MTU,
  DRIVERS,
  type Driver,
  EPHEMERAL_PORTS,
  type Endpoint,
  ICC_OPTION,
  MASQ_OPTION,
  MTU_OPTION,
  NETWORK_NAME,
  type Network,
  type NetworkMode,
  type NetworkSpec,
  type PortBinding,
  type PortBindingSpec,
  STATE_VERSION,
  type StateJSON,
  type StateOptions,
  makeContainer,
  makeNetwork,
  networkIpam,
  normaliseAliases,
  randomId,
  shortId,
  validateBridgeOptions,
  validateHostname,
  validateRecord,
  withGatewayMac,
} from './records.js';
import { validateOverlayOptions } from './overlay-options.js';
import { validateParentOptions } from './parent-options.js';
import { checkContainer, checkNetwork } from './state-file.js';

export * from './records.js';

/**
 * Longest network or container name. A container's namespace is
 * `<netns prefix><name>` (a file under /run/netns), and names end up in
 * every answer, event and the state file; Docker-style names this long are
 * already unwieldy.
 */
export const NAME_MAX = 64;

function checkNameLength(name: string, what: string): void {
  if (name.length > NAME_MAX) throw new Error(`invalid ${what} name "${name.slice(0, 24)}…": longer than ${NAME_MAX} characters`);
}

export class State {
  private nets: Network[] = [];
  private ctrs: Container[] = [];
  private readonly newId: () => string;
  private readonly now: () => Date;
  private readonly supported: ReadonlySet<Driver>;
  /**
   * Addresses held outside the State on a network (the daemon's DHCP
   * leases): never handed to a container. Not persisted; survives restore().
   */
  extraTaken: ((networkId: string) => Iterable<number>) | null = null;
  /** Endpoints held outside the State (the daemon's attachments): such a network is in use. */
  extraInUse: ((networkId: string) => boolean) | null = null;

  constructor(readonly options: StateOptions = {}) {
    this.newId = options.newId ?? randomId;
    this.now = options.now ?? (() => new Date());
    this.supported = new Set(options.supportedDrivers ?? ['bridge']);
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
    if (this.extraTaken) for (const ip of this.extraTaken(network.id)) out.push(ip);
    return out.sort((a, b) => a - b);
  }

  // ------------------------------------------------------------ networks

  /** What a network of this driver may not overlap besides other networks: the special-purpose ranges, and usernet's own links for the drivers it routes. */
  private reservedFor(driver: Driver): readonly ExistingSubnet[] {
    const own = driver === 'bridge' || driver === 'overlay' ? (this.options.reserved ?? []) : [];
    return [...SPECIAL_PURPOSE_RANGES, ...own];
  }

  createNetwork(spec: NetworkSpec): Network {
    const name = spec.name;
    if (typeof name !== 'string' || name === '') throw new Error('network name is required');
    checkNameLength(name, 'network');
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
    if (driver === 'overlay') validateOverlayOptions(options);
    if (driver === 'macvlan' || driver === 'ipvlan') {
      validateParentOptions(driver, options);
      const other = this.nets.find((n) => (n.driver === 'macvlan' || n.driver === 'ipvlan') && n.options.parent === options.parent);
      if (other) throw new Error(`parent ${options.parent} is already used by network ${other.name}`);
    }
    const existing = [
      ...this.reservedFor(driver as Driver),
      ...this.nets.filter((n) => n.subnet !== null).map((n) => ({ name: n.name, subnet: parseCidr(n.subnet!) })),
    ];
    const pools = driver === 'overlay' ? OVERLAY_POOLS : undefined;
    const ipam = resolveIpamConfig({ subnet: spec.subnet, gateway: spec.gateway, ipRange: spec.ipRange }, existing, pools);
    const net = withGatewayMac({
      id: this.freshId(),
      name,
      driver: driver as Driver,
      scope: driver === 'overlay' && spec.scope === 'swarm' ? 'swarm' : 'local',
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

  /**
   * A network another host created (an overlay network from the cluster),
   * with its id. Refused (the one-line reason) when its name or subnet
   * clashes with a network here; a network already known by id is kept.
   */
  adoptNetwork(net: Network): Network {
    const known = this.nets.find((n) => n.id === net.id);
    if (known) return known;
    if (this.nets.some((n) => n.name === net.name)) throw new Error(`network name ${net.name} is already used by a local network`);
    if (net.subnet !== null) {
      const sub = parseCidr(net.subnet);
      const own = this.reservedFor(net.driver).find((r) => cidrsOverlap(r.subnet, sub));
      if (own) throw new Error(`subnet ${net.subnet} overlaps with ${own.what ?? own.name} (${formatCidr(own.subnet)})`);
      const clash = this.nets.find((n) => n.subnet !== null && cidrsOverlap(parseCidr(n.subnet), sub));
      if (clash) throw new Error(`subnet ${net.subnet} overlaps with network "${clash.name}" (${clash.subnet})`);
    }
    const n = withGatewayMac({ ...net, builtin: false });
    this.nets = [...this.nets, n];
    return n;
  }

  /** Drop a network another host removed; false (kept) while containers here are on it. */
  forgetNetwork(id: string): boolean {
    const n = this.nets.find((x) => x.id === id);
    if (!n) return true;
    if (this.containersOn(n).length > 0 || this.extraInUse?.(n.id)) return false;
    this.nets = this.nets.filter((x) => x !== n);
    return true;
  }

  /** Remove by name or id prefix; returns the removed network. */
  removeNetwork(ref: string): Network {
    const n = this.findNetwork(ref);
    if (n.builtin) throw new Error(`${n.name} is a pre-defined network and cannot be removed`);
    if (this.containersOn(n).length > 0 || this.extraInUse?.(n.id)) {
      throw new Error(`error while removing network: network ${n.name} has active endpoints`);
    }
    this.nets = this.nets.filter((x) => x !== n);
    return n;
  }

  /** Remove every user-defined network without endpoints; returns them (creation order). */
  prune(): Network[] {
    const gone = this.nets.filter((n) => !n.builtin && this.containersOn(n).length === 0 && !this.extraInUse?.(n.id));
    this.nets = this.nets.filter((n) => !gone.includes(n));
    return gone;
  }

  // ---------------------------------------------------------- containers

  createContainer(spec: ContainerSpec): Container {
    const name = spec.name;
    if (typeof name !== 'string' || name === '') throw new Error('container name is required (--name)');
    checkNameLength(name, 'container');
    if (!CONTAINER_NAME.test(name)) {
      throw new Error(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    const clash = this.ctrs.find((c) => c.name === name);
    if (clash) throw new Error(`the container name "${name}" is already in use by container ${shortId(clash.id)}`);
    const aliases = spec.aliases ?? [];
    const hasIp = spec.ip != null && spec.ip !== '';
    const hasMac = spec.mac != null && spec.mac !== '';
    if ((spec.network ?? '').startsWith('container:')) return this.createSharing(spec, name);
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

  /** `--network container:NAME`: no endpoints of its own, the target's namespace (a sharer's target is followed to its root). */
  private createSharing(spec: ContainerSpec, name: string): Container {
    let target = this.findContainer(spec.network!.slice('container:'.length));
    while (target.networkMode === 'container') target = this.findContainer(target.sharesWith!);
    if (spec.ip || (spec.aliases ?? []).length || spec.mac) throw new Error('conflicting options: container type network mode and --ip, --alias or --mac-address');
    if ((spec.ports ?? []).length) throw new Error('conflicting options: port publishing and the container type network mode');
    if (target.networkMode === 'host') throw new Error(`cannot join the network namespace of ${target.name}: it uses the host's`);
    const id = this.freshId();
    if (spec.hostname) validateHostname(spec.hostname);
    const c = makeContainer({ id, name, hostname: spec.hostname || shortId(id), networkMode: 'container', sharesWith: target.id, endpoints: [], ports: [], created: this.now().toISOString() });
    this.ctrs = [...this.ctrs, c];
    return c;
  }

  /** Remove by name or id prefix; returns the removed container. */
  removeContainer(ref: string): Container {
    const c = this.findContainer(ref);
    const sharer = this.ctrs.find((x) => x.sharesWith === c.id);
    if (sharer) throw new Error(`container ${c.name} is in use: ${sharer.name} shares its network namespace (remove ${sharer.name} first)`);
    this.ctrs = this.ctrs.filter((x) => x !== c);
    return c;
  }

  /** Attach a container to a network; returns the updated container, the new endpoint and the network. */
  connect(networkRef: string, containerRef: string, opts: ConnectOptions = {}): Attachment {
    const net = this.findNetwork(networkRef);
    const c = this.findContainer(containerRef);
    if (c.networkMode === 'container') throw new Error(`container ${c.name} shares another container's network namespace: connect that container instead`);
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

