/**
 * IPAM — cold-path IPv4 address management for bridge networks.
 *
 * Addresses are uint32 numbers internally (as on the hot path); the string
 * helpers (`parseIp`, `formatIp`, `parseCidr`, `formatCidr`) sit at the edge.
 * Everything here is pure: no I/O, no clock, no randomness. Allocator state is
 * nothing but the set of taken addresses, so it is rebuilt from the list of
 * endpoints the daemon persists.
 *
 * Choices (where Docker has varied between versions):
 * - A subnet or ip-range written with host bits set (`172.20.0.5/16`) is
 *   rejected with a hint naming the masked form, as Docker ≥ 25 does
 *   ("invalid subnet …: it should be 172.20.0.0/16"). Silently normalising
 *   hides typos such as a /16 meant as /24.
 * - Prefix lengths longer than /30 are rejected: a /31 or /32 has no room for
 *   a gateway and a container once the network and broadcast addresses are
 *   set aside.
 * - Allocation hands out the lowest free address of the ip-range (or of the
 *   subnet), so a released address is reused by the next container. This is
 *   what the local (non-swarm) Docker daemon does in practice (repeated
 *   `docker run --rm` on the default bridge gets 172.17.0.2 every time), and
 *   it needs no state beyond the taken set.
 * - The subnet's network and broadcast addresses and the gateway are never
 *   handed out. The first address of an ip-range that is not the subnet's
 *   network address (10.1.3.0 in 10.1.3.0/24 inside 10.1.0.0/16) is a host
 *   address like any other and is handed out, as Docker does.
 * - An explicit address (`--ip`) must be inside the subnet, but may lie
 *   outside the ip-range: that is how users keep static addresses away from
 *   dynamic ones.
 */
import { macToString, parseMac as wireParseMac } from '../wire/ethernet.js';
import ipaddr from 'ipaddr.js';

/** An IPv4 prefix: `base` is the network address (host bits clear). */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

/** The resolved addressing of one network. */
export interface IpamConfig {
  readonly subnet: Cidr;
  readonly gateway: number;
  /** Dynamic allocation comes from here when set; always inside `subnet`. */
  readonly ipRange: Cidr | null;
}

/** What the user asked for (`--subnet`, `--gateway`, `--ip-range`). */
export interface IpamRequest {
  subnet?: string | null;
  gateway?: string | null;
  ipRange?: string | null;
}

/** A network already holding a subnet, for overlap checks. */
export interface ExistingSubnet {
  readonly name: string;
  readonly subnet: Cidr;
  /** what it is when it is not a network (e.g. "usernet's uplink"), for the error */
  readonly what?: string;
}

/** Ranges that are never a network's subnet (RFC 6890 special-purpose blocks that cannot carry unicast hosts). */
export const SPECIAL_PURPOSE_RANGES: readonly ExistingSubnet[] = [
  { name: '0.0.0.0/8', subnet: { base: 0x00000000, prefix: 8 }, what: '0.0.0.0/8 ("this network", RFC 1122)' },
  { name: '127.0.0.0/8', subnet: { base: 0x7f000000, prefix: 8 }, what: 'the loopback range 127.0.0.0/8' },
  { name: '169.254.0.0/16', subnet: { base: 0xa9fe0000, prefix: 16 }, what: 'the link-local range 169.254.0.0/16' },
  { name: '224.0.0.0/4', subnet: { base: 0xe0000000, prefix: 4 }, what: 'the multicast range 224.0.0.0/4' },
  { name: '240.0.0.0/4', subnet: { base: 0xf0000000, prefix: 4 }, what: 'the reserved range 240.0.0.0/4' },
];

/** Longest prefix accepted for a network's subnet. */
export const MAX_SUBNET_PREFIX = 30;

// ---------------------------------------------------------------- addresses

function bytesToNum(b: readonly number[]): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** True for a dotted-quad IPv4 address with decimal octets (no 010, 0x0a, 10.1). */
export function isIp(s: string): boolean {
  return typeof s === 'string' && ipaddr.IPv4.isValidFourPartDecimal(s);
}

/**
 * Parse a dotted-quad IPv4 address. `what` names the thing in the error
 * (`invalid gateway "x": …`).
 */
export function parseIp(s: string, what = 'IP address'): number {
  if (typeof s !== 'string' || s === '') throw new Error(`invalid ${what} "${s ?? ''}": empty`);
  if (!isIp(s)) {
    if (ipaddr.IPv6.isValid(s)) throw new Error(`invalid ${what} "${s}": IPv6 is not supported`);
    throw new Error(`invalid ${what} "${s}": not an IPv4 address (expected a.b.c.d)`);
  }
  return bytesToNum(ipaddr.IPv4.parse(s).toByteArray());
}

export function formatIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

// -------------------------------------------------------------------- cidrs

/** Netmask of a prefix length as a uint32 (0 for /0). */
export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function cidrFirst(c: Cidr): number {
  return c.base;
}

/** Last address of the prefix (the broadcast address of a subnet). */
export function cidrLast(c: Cidr): number {
  return (c.base | ~prefixMask(c.prefix)) >>> 0;
}

/** Number of addresses in the prefix. */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & prefixMask(c.prefix)) >>> 0) === c.base;
}

/** `inner` lies entirely inside `outer`. */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.base);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContainsCidr(a, b) || cidrContainsCidr(b, a);
}

export function cidrEquals(a: Cidr, b: Cidr): boolean {
  return a.base === b.base && a.prefix === b.prefix;
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

/** Build a Cidr from an address and prefix, clearing host bits. */
export function makeCidr(ip: number, prefix: number): Cidr {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`invalid prefix length ${prefix}`);
  return { base: (ip & prefixMask(prefix)) >>> 0, prefix };
}

/**
 * Parse `a.b.c.d/len`. Host bits set is an error naming the masked form.
 * `what` names the flag in the error: `invalid subnet "10.0.0.0/33": …`.
 */
export function parseCidr(s: string, what = 'subnet'): Cidr {
  const bad = (why: string): Error => new Error(`invalid ${what} "${s}": ${why}`);
  if (typeof s !== 'string' || s === '') throw new Error(`invalid ${what} "": empty`);
  const slash = s.indexOf('/');
  if (slash < 0) {
    if (isIp(s)) throw bad(`missing prefix length (like ${s}/24)`);
    throw bad('expected an IPv4 address and a prefix length, like 10.1.0.0/24');
  }
  const addr = s.slice(0, slash);
  const len = s.slice(slash + 1);
  if (ipaddr.IPv6.isValid(addr)) throw bad('IPv6 is not supported');
  if (!isIp(addr)) {
    if (/^[0-9.]+$/.test(addr)) throw bad(`${addr} is not a valid IPv4 address`);
    throw bad('expected an IPv4 address and a prefix length, like 10.1.0.0/24');
  }
  if (!/^(0|[1-9][0-9]?)$/.test(len)) throw bad('prefix length must be a number from 0 to 32');
  const prefix = Number(len);
  if (prefix > 32) throw bad('prefix length must be a number from 0 to 32');
  const ip = bytesToNum(ipaddr.IPv4.parse(addr).toByteArray());
  const c = makeCidr(ip, prefix);
  if (c.base !== ip) throw bad(`host bits are set, it should be ${formatCidr(c)}`);
  return c;
}

// -------------------------------------------------------------------- pools

/** The built-in `bridge` network's subnet and gateway. */
export const DEFAULT_BRIDGE_SUBNET: Cidr = Object.freeze({ base: 0xac110000, prefix: 16 });
export const DEFAULT_BRIDGE_GATEWAY = 0xac110001;

/**
 * Docker's default address pools, in order: 172.17.0.0/16 … 172.31.0.0/16,
 * then 192.168.0.0/16 cut into /20s (192.168.0.0/20, 192.168.16.0/20, …).
 */
export const DEFAULT_POOLS: readonly Cidr[] = Object.freeze(
  [
    ...Array.from({ length: 15 }, (_, i) => ({ base: (0xac110000 + (i << 16)) >>> 0, prefix: 16 })),
    ...Array.from({ length: 16 }, (_, i) => ({ base: (0xc0a80000 + (i << 12)) >>> 0, prefix: 20 })),
  ].map((c) => Object.freeze(c)),
);

/** Docker swarm's default pool for overlay networks: 10.0.0.0/8 cut into /24s. */
export const OVERLAY_POOLS: readonly Cidr[] = Object.freeze(
  Array.from({ length: 65536 }, (_, i) => Object.freeze({ base: (0x0a000000 + (i << 8)) >>> 0, prefix: 24 })),
);

/** First default pool overlapping none of `existing`; Docker's error when none is left. */
export function pickDefaultPool(existing: readonly ExistingSubnet[], pools: readonly Cidr[] = DEFAULT_POOLS): Cidr {
  for (const p of pools) {
    if (!existing.some((e) => cidrsOverlap(e.subnet, p))) return p;
  }
  throw new Error(
    'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network',
  );
}

/** First usable host address of a subnet (the default gateway). */
export function firstHost(c: Cidr): number {
  return (c.base + 1) >>> 0;
}

/**
 * Validate a network's addressing request and resolve it: subnet (given or
 * from the default pools), gateway (given or the first host address) and
 * ip-range. Throws a one-line error on bad input.
 */
export function resolveIpamConfig(req: IpamRequest, existing: readonly ExistingSubnet[], pools: readonly Cidr[] = DEFAULT_POOLS): IpamConfig {
  const hasSubnet = req.subnet != null && req.subnet !== '';
  const hasGateway = req.gateway != null && req.gateway !== '';
  const hasRange = req.ipRange != null && req.ipRange !== '';
  if (!hasSubnet && (hasGateway || hasRange)) {
    throw new Error('every ip-range or gateway must have a corresponding subnet');
  }
  let subnet: Cidr;
  if (hasSubnet) {
    subnet = parseCidr(req.subnet!, 'subnet');
    if (subnet.prefix > MAX_SUBNET_PREFIX) {
      throw new Error(
        `invalid subnet "${req.subnet}": prefix length must be ${MAX_SUBNET_PREFIX} or less (no room for a gateway and containers)`,
      );
    }
    for (const e of existing) {
      if (cidrsOverlap(e.subnet, subnet)) {
        throw new Error(`subnet ${formatCidr(subnet)} overlaps with ${e.what ?? `network "${e.name}"`} (${formatCidr(e.subnet)})`);
      }
    }
  } else {
    subnet = pickDefaultPool(existing, pools);
  }
  let ipRange: Cidr | null = null;
  if (hasRange) {
    ipRange = parseCidr(req.ipRange!, 'ip-range');
    if (!cidrContainsCidr(subnet, ipRange)) {
      throw new Error(`ip-range ${formatCidr(ipRange)} is not inside subnet ${formatCidr(subnet)}`);
    }
  }
  let gateway: number;
  if (hasGateway) {
    gateway = parseIp(req.gateway!, 'gateway');
    const g = formatIp(gateway);
    if (!cidrContains(subnet, gateway)) throw new Error(`gateway ${g} is not in subnet ${formatCidr(subnet)}`);
    if (gateway === subnet.base) {
      throw new Error(`gateway ${g} is the network address of subnet ${formatCidr(subnet)}`);
    }
    if (gateway === cidrLast(subnet)) {
      throw new Error(`gateway ${g} is the broadcast address of subnet ${formatCidr(subnet)}`);
    }
  } else {
    gateway = firstHost(subnet);
  }
  const cfg: IpamConfig = { subnet, gateway, ipRange };
  if (countAssignable(cfg) === 0) {
    throw new Error(
      `ip-range ${formatCidr(ipRange!)} leaves no address for containers in subnet ${formatCidr(subnet)}`,
    );
  }
  return cfg;
}

/** Build an IpamConfig from stored strings (already validated once). */
export function ipamConfigFromStrings(subnet: string, gateway: string, ipRange?: string | null): IpamConfig {
  return {
    subnet: parseCidr(subnet, 'subnet'),
    gateway: parseIp(gateway, 'gateway'),
    ipRange: ipRange ? parseCidr(ipRange, 'ip-range') : null,
  };
}

// --------------------------------------------------------------- allocation

/** Range addresses are dynamically allocated from: [lo, hi] inclusive. */
function dynamicBounds(cfg: IpamConfig): [number, number] {
  const r = cfg.ipRange ?? cfg.subnet;
  let lo = cidrFirst(r);
  let hi = cidrLast(r);
  if (lo === cfg.subnet.base) lo = (lo + 1) >>> 0;
  if (hi === cidrLast(cfg.subnet)) hi = (hi - 1) >>> 0;
  return [lo, hi];
}

/** How many addresses dynamic allocation could ever hand out (taken or not). */
export function countAssignable(cfg: IpamConfig): number {
  const [lo, hi] = dynamicBounds(cfg);
  if (hi < lo) return 0;
  const gw = cfg.gateway >= lo && cfg.gateway <= hi ? 1 : 0;
  return hi - lo + 1 - gw;
}

/**
 * Lowest free address of the ip-range (or subnet), skipping the network and
 * broadcast addresses, the gateway and `taken`. `network` names it in the
 * error when none is left.
 */
export function allocateAddress(cfg: IpamConfig, taken: ReadonlySet<number>, network = ''): number {
  const [lo, hi] = dynamicBounds(cfg);
  for (let ip = lo; ip <= hi; ip++) {
    if (ip !== cfg.gateway && !taken.has(ip)) return ip >>> 0;
  }
  throw new Error(
    `no available IPv4 addresses on this network's address pools${network ? `: ${network}` : ''} (${formatCidr(cfg.ipRange ?? cfg.subnet)})`,
  );
}

/**
 * Check that an explicitly requested address (`--ip`) can be given out:
 * inside the subnet, not its network/broadcast address, not the gateway,
 * not taken. Throws the user-facing error otherwise.
 */
export function checkRequestedAddress(cfg: IpamConfig, ip: number, taken: ReadonlySet<number>, network = ''): void {
  const a = formatIp(ip);
  const s = formatCidr(cfg.subnet);
  const on = network ? ` of network "${network}"` : '';
  if (!cidrContains(cfg.subnet, ip)) throw new Error(`address ${a} is not in subnet ${s}${on}`);
  if (ip === cfg.subnet.base) throw new Error(`address ${a} is the network address of subnet ${s}`);
  if (ip === cidrLast(cfg.subnet)) throw new Error(`address ${a} is the broadcast address of subnet ${s}`);
  if (ip === cfg.gateway) throw new Error(`address ${a} is the gateway${on}`);
  if (taken.has(ip)) throw new Error(`address ${a} is already in use${network ? ` on network "${network}"` : ''}`);
}

/**
 * A mutable allocator over one network, for callers that hand out many
 * addresses in a row (DHCP). Its whole state is the taken set: rebuild it
 * with `new AddressAllocator(cfg, takenList)`.
 */
export class AddressAllocator {
  readonly config: IpamConfig;
  readonly network: string;
  private readonly used: Set<number>;

  constructor(cfg: IpamConfig, taken: Iterable<number> = [], network = '') {
    this.config = cfg;
    this.network = network;
    this.used = new Set<number>();
    for (const ip of taken) this.used.add(ip >>> 0);
  }

  /** Take the lowest free address. */
  allocate(): number {
    const ip = allocateAddress(this.config, this.used, this.network);
    this.used.add(ip);
    return ip;
  }

  /** Take a specific address (`--ip`); throws if it cannot be given out. */
  reserve(ip: number): number {
    checkRequestedAddress(this.config, ip >>> 0, this.used, this.network);
    this.used.add(ip >>> 0);
    return ip >>> 0;
  }

  /** Give an address back; false if it was not taken. */
  release(ip: number): boolean {
    return this.used.delete(ip >>> 0);
  }

  isTaken(ip: number): boolean {
    return this.used.has(ip >>> 0);
  }

  /** Taken addresses, ascending (what to persist). */
  taken(): number[] {
    return [...this.used].sort((a, b) => a - b);
  }

  /** Addresses dynamic allocation could still hand out. */
  get free(): number {
    const [lo, hi] = dynamicBounds(this.config);
    let inUse = 0;
    for (const ip of this.used) if (ip >= lo && ip <= hi && ip !== this.config.gateway) inUse++;
    return countAssignable(this.config) - inUse;
  }
}

// --------------------------------------------------------------------- MACs

function hex2(n: number): string {
  return (n & 255).toString(16).padStart(2, '0');
}

/** Docker's container MAC: 02:42 + the four IPv4 bytes (172.17.0.2 → 02:42:ac:11:00:02). */
export function macFromIp(ip: number): string {
  return `02:42:${hex2(ip >>> 24)}:${hex2(ip >>> 16)}:${hex2(ip >>> 8)}:${hex2(ip)}`;
}

/**
 * usernet's own MAC for a network's gateway: 02:75:6e ("un", locally
 * administered, unicast, never clashing with Docker's 02:42 scheme) + the
 * first three bytes of the network id, so it is stable across restarts.
 */
export function gatewayMac(networkId: string): string {
  if (!/^[0-9a-f]{6}/i.test(networkId)) throw new Error(`invalid network id "${networkId}"`);
  const id = networkId.toLowerCase();
  return `02:75:6e:${id.slice(0, 2)}:${id.slice(2, 4)}:${id.slice(4, 6)}`;
}

/**
 * Parse a MAC address (`aa:bb:cc:dd:ee:ff` or `aa-bb-…`) to the lower-case
 * colon form. Multicast/broadcast and all-zero addresses are refused: they
 * cannot be an interface's own address.
 */
export function parseMac(s: string): string {
  const m = typeof s === 'string' ? /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i.exec(s) : null;
  if (!m) throw new Error(`invalid MAC address "${s}": expected six hex octets like 02:42:ac:11:00:02`);
  const bytes = [m[1], m[3], m[4], m[5], m[6], m[7]].map((x) => parseInt(x!, 16));
  if (bytes[0]! & 1) throw new Error(`invalid MAC address "${s}": multicast/broadcast address cannot be assigned`);
  if (bytes.every((b) => b === 0)) throw new Error(`invalid MAC address "${s}": all-zero address cannot be assigned`);
  return bytes.map(hex2).join(':');
}

/** A MAC as a 48-bit number (hot-path form). Accepts what `formatMac` produces. */
/** "02:42:ac:11:00:02" → 48-bit number (the wire layer's parser). */
export function macToNumber(mac: string): number {
  return wireParseMac(mac);
}

/** 48-bit number → "02:42:ac:11:00:02". */
export function formatMac(n: number): string {
  return macToString(n);
}
