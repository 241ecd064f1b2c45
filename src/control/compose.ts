/**
 * Compose planner: a compose file → a ComposePlan (networks to create or
 * expect, containers with their attachments and ports), all validated up
 * front so `usernet up` never brings a project up halfway. Pure, except
 * `loadCompose` (reads the file, $COMPOSE_PROJECT_NAME) and `checkPlan` (a
 * dry run on a copy of a State). Networking keys only; the rest of the
 * Compose spec (`image`, `command`, `depends_on`, …) is accepted and ignored.
 *
 * Names and defaults (Docker Compose v2): project = `-p`, else top-level
 * `name:`, else the file's directory (lower-cased, [^a-z0-9_-] dropped,
 * leading - and _ trimmed); networks `<project>_<key>` unless `name:`;
 * containers `<project>-<service>-1` unless `container_name`; a service
 * without `networks` (or with an empty list) joins `default` =
 * `<project>_default` (customisable under top-level `networks.default`).
 * Declared networks no service uses are validated but not planned, as
 * Compose drops them. Every service gets its service name as an alias on
 * each of its networks (before its own `aliases`).
 *
 * network_mode: `host` / `none` (no attachments; `ports` dropped with a
 * warning, as Docker does), `bridge` (the default bridge, no aliases),
 * `service:NAME` (`{ sharesWith: NAME }`, no attachments, no ports or
 * hostname). A service whose only network is an external one named `host`
 * or `none` gets that mode. `ipv4_address` on an external network is
 * checked by `checkPlan` / the daemon (its subnet is not in the file).
 *
 * Order — apply the plan in exactly this order:
 * 1. `networks`: those with an explicit `ipam.config` subnet first (so
 *    automatic subnets cannot take them), then the implicit `default`, then
 *    the rest in file order. External ones are only checked (checkExternal).
 * 2. `containers`: services with an `ipv4_address` first (so dynamic
 *    allocation cannot take a static address), otherwise file order; a
 *    `network_mode: service:X` service always comes after X. For each one,
 *    create it on `attachments[0]` (see `containerSpec`) and then `connect`
 *    `attachments[1..]` in order. Attachments follow the file's order
 *    (list or map), stably re-sorted by the optional `priority` (higher
 *    first) as Compose does.
 * `down` is the reverse: containers (dependants first), then networks.
 *
 * Errors: one line, `FILE: KEY.PATH: what is wrong`; YAML syntax errors
 * `FILE:LINE:COL: message`.
 */
import { validateOverlayOptions } from './overlay-options.js';
import { validateParentOptions } from './parent-options.js';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Cidr, type IpamConfig, checkRequestedAddress, formatCidr, formatIp, parseIp, resolveIpamConfig } from '../services/ipam.js';
import { NAME_MAX, State } from './model.js';
import {
  BUILTIN_NETWORKS, CONTAINER_NAME, type Container, type ContainerSpec, HOST_MODE_PORTS_WARNING, NETWORK_NAME,
  type Network, type NetworkSpec, type PortBindingSpec, normaliseAliases, validateAlias, validateBridgeOptions,
  validateHostname, validateRecord,
} from './records.js';
import {
  type Fail, type YMap, asMap, checkKeys, composePorts, describeHostPort, dict, ok, optBool, optStr, parseComposeYaml,
  portClash, projectName, strList,
} from './compose-ports.js';

export { PROJECT_NAME_RULE, normaliseProjectName, parseComposeYaml } from './compose-ports.js';

export const PROJECT_LABEL = 'com.docker.compose.project';
export const SERVICE_LABEL = 'com.docker.compose.service';
export const NETWORK_LABEL = 'com.docker.compose.network';
/** Looked up in this order when no `-f` is given (Compose v2). */
export const COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'] as const;

export type PlannedNetwork =
  | { key: string; name: string; external: false; spec: NetworkSpec }
  /** Not created: must already exist under `name` (checkExternal). */
  | { key: string; name: string; external: true; spec: null };

/** `sharesWith`: the service (not container) whose network namespace this one joins. */
export type PlannedNetworkMode = 'default' | 'host' | 'none' | { sharesWith: string };

export interface PlannedAttachment {
  /** Real network name (`<project>_<key>`, `name:`, or `bridge` for network_mode: bridge). */
  network: string;
  ip?: string;
  /** The service name first, then the file's aliases; empty on the default bridge. */
  aliases: string[];
}

export interface PlannedContainer {
  service: string;
  name: string;
  hostname?: string;
  networkMode: PlannedNetworkMode;
  /** [0]: where the container is created; the rest are connects, in order. Empty unless networkMode is 'default'. */
  attachments: PlannedAttachment[];
  /** Host port 0 = pick a free one. Empty for host/none (warned) and service: modes. */
  ports: PortBindingSpec[];
  labels: Record<string, string>;
}

export interface ComposePlan {
  project: string;
  file: string;
  networks: PlannedNetwork[];
  containers: PlannedContainer[];
  /** One line each, e.g. ports discarded in host mode. */
  warnings: string[];
}

export interface PlanOptions {
  /** Network drivers `up` can create (default: bridge only). */
  drivers?: readonly string[];
}

const KEY = /^[a-zA-Z0-9._-]+$/;
const TOP_KEYS = ['version', 'name', 'services', 'networks', 'volumes', 'configs', 'secrets'];
const NET_KEYS = ['name', 'external', 'driver', 'driver_opts', 'ipam', 'internal', 'attachable', 'labels', 'enable_ipv6', 'enable_ipv4'];
const IPAM_KEYS = ['driver', 'config', 'options'];
const POOL_KEYS = ['subnet', 'ip_range', 'gateway', 'aux_addresses'];
const ATTACH_KEYS = ['aliases', 'ipv4_address', 'ipv6_address', 'link_local_ips', 'mac_address', 'driver_opts', 'priority', 'gw_priority', 'interface_name'];

interface NetDef { key: string; name: string; external: boolean; spec: NetworkSpec | null; ipam: IpamConfig | null }
interface Draft { at: string; pc: PlannedContainer; hasStatic: boolean }

// ------------------------------------------------------------------ loading

/** The first of COMPOSE_FILES present in `dir`. */
export function findComposeFile(dir: string): string {
  for (const f of COMPOSE_FILES) if (existsSync(join(dir, f))) return f;
  throw new Error(`no configuration file provided: not found (looked for ${COMPOSE_FILES.join(', ')})`);
}

/** Read and plan a compose file (default: found in the cwd); project: -p, else $COMPOSE_PROJECT_NAME, else the file's. */
export async function loadCompose(file?: string, project?: string, opts: PlanOptions = {}): Promise<ComposePlan> {
  const path = file ?? findComposeFile(process.cwd());
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
  return planCompose(text, path, project || process.env.COMPOSE_PROJECT_NAME || undefined, opts);
}

// ----------------------------------------------------------------- planning

/** The plan for a compose file's text; `fileName` names it in errors (and gives the project when none is set). */
export function planCompose(text: string, fileName: string, project?: string, opts: PlanOptions = {}): ComposePlan {
  const fail: Fail = (path, msg) => {
    throw new Error(`${fileName}: ${path}: ${msg}`);
  };
  const guard = <T>(at: string, fn: () => T, strip?: RegExp): T => {
    try {
      return fn();
    } catch (e) {
      return fail(at, strip ? (e as Error).message.replace(strip, '') : (e as Error).message);
    }
  };
  const doc = parseComposeYaml(text, fileName);
  if (doc === null || doc === undefined) throw new Error(`${fileName}: empty compose file`);
  if (!(doc instanceof Map)) throw new Error(`${fileName}: the top level must be a mapping`);
  const root = doc as YMap;
  checkKeys(root, '', TOP_KEYS, fail);
  const proj = projectName(project, root.get('name'), fileName, fail);
  // <project>_default and <project>-<service>-1 must fit the daemon's 64-character names
  if (proj.length > NAME_MAX - 10) fail('name', `project name "${proj.slice(0, 24)}…" is longer than ${NAME_MAX - 10} characters`);
  const defs = declareNetworks(root.get('networks'), proj, fail, guard, opts.drivers ?? ['bridge', 'overlay', 'macvlan', 'ipvlan']);
  const implicit: NetDef = { key: 'default', name: `${proj}_default`, external: false, spec: bridgeSpec(`${proj}_default`, proj, 'default'), ipam: null };
  const netOf = (key: string): NetDef | undefined => defs.get(key) ?? (key === 'default' ? implicit : undefined);
  const services = asMap(root.get('services'), 'services', fail);
  if (services.size === 0) fail('services', 'no services defined');

  const used = new Set<string>();
  const taken = new Map<string, string>();
  const checkIp = (def: NetDef, ip: string, svc: string, at: string): void => {
    if (def.external) return; // its subnet is the daemon's to know: checkPlan / connect check it
    if (!def.ipam) {
      fail(at, `user specified IP address is supported only when connecting to networks with user configured subnets (set networks.${def.key}.ipam.config)`);
    }
    const n = guard(at, () => parseIp(ip, 'IPv4 address'));
    guard(at, () => checkRequestedAddress(def.ipam!, n, new Set()), /^address /);
    const other = taken.get(`${def.key}/${n}`);
    if (other !== undefined) fail(at, `${ip} is already used by services.${other}`);
    taken.set(`${def.key}/${n}`, svc);
  };
  const attach = (svc: string, at: string, v: unknown): PlannedAttachment[] => {
    const items: { key: string; cfg: YMap; prio: number }[] = [];
    if (Array.isArray(v)) {
      v.forEach((k, i) => {
        if (typeof k !== 'string') fail(`${at}.networks[${i}]`, 'must be a network name');
        if (items.some((x) => x.key === k)) fail(`${at}.networks`, `network "${k}" is listed twice`);
        items.push({ key: k, cfg: new Map(), prio: 0 });
      });
    } else {
      for (const [k, c] of asMap(v, `${at}.networks`, fail)) {
        const cat = `${at}.networks.${k}`;
        const cfg = asMap(c, cat, fail);
        checkKeys(cfg, cat, ATTACH_KEYS, fail);
        const prio = cfg.get('priority') ?? 0;
        if (!Number.isInteger(prio)) fail(`${cat}.priority`, 'must be an integer');
        items.push({ key: k, cfg, prio: prio as number });
      }
    }
    if (items.length === 0) items.push({ key: 'default', cfg: new Map(), prio: 0 });
    items.sort((a, b) => b.prio - a.prio);
    const declared = [...defs.keys()];
    return items.map(({ key, cfg }) => {
      const cat = `${at}.networks.${key}`;
      const def = netOf(key) ?? fail(`${at}.networks`, `unknown network "${key}" (${declared.length ? `defined: ${declared.join(', ')}` : 'no networks are defined'})`);
      used.add(key);
      if (cfg.get('ipv6_address') != null) fail(`${cat}.ipv6_address`, 'IPv6 is not supported');
      const extra = strList(cfg.get('aliases'), `${cat}.aliases`, fail);
      const onBridge = def.external && def.name === 'bridge';
      if (onBridge && extra.length) fail(`${cat}.aliases`, 'network-scoped alias is supported only for containers in user defined networks');
      const aliases = onBridge ? [] : guard(`${cat}.aliases`, () => normaliseAliases([svc, ...extra]));
      const ip = optStr(cfg.get('ipv4_address'), `${cat}.ipv4_address`, fail);
      if (ip !== undefined) checkIp(def, ip, svc, `${cat}.ipv4_address`);
      return ip === undefined ? { network: def.name, aliases } : { network: def.name, ip, aliases };
    });
  };

  const warnings: string[] = [];
  const drafts = new Map<string, Draft>();
  const names = new Map<string, string>();
  for (const [svc, raw] of services) {
    const at = `services.${svc}`;
    if (!KEY.test(svc) || !ok(() => validateAlias(svc))) {
      fail('services', `invalid service name "${svc}": only letters, digits, "-", "_" and "." are allowed, as a DNS name`);
    }
    const m = asMap(raw, at, fail);
    const name = optStr(m.get('container_name'), `${at}.container_name`, fail) ?? `${proj}-${svc}-1`;
    if (!CONTAINER_NAME.test(name)) fail(`${at}.container_name`, `invalid container name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (name.length > NAME_MAX) fail(`${at}.container_name`, `container name "${name.slice(0, 24)}…" is longer than ${NAME_MAX} characters`);
    if (names.has(name)) fail(`${at}.container_name`, `container name "${name}" is already used by services.${names.get(name)}`);
    names.set(name, svc);
    const hostname = optStr(m.get('hostname'), `${at}.hostname`, fail);
    if (hostname !== undefined) guard(`${at}.hostname`, () => validateHostname(hostname));
    const pc: PlannedContainer = {
      service: svc,
      name,
      ...(hostname !== undefined ? { hostname } : {}),
      networkMode: 'default',
      attachments: [],
      ports: composePorts(m.get('ports'), `${at}.ports`, fail),
      labels: { [PROJECT_LABEL]: proj, [SERVICE_LABEL]: svc },
    };
    const mode = optStr(m.get('network_mode'), `${at}.network_mode`, fail);
    if (mode === undefined) {
      pc.attachments = attach(svc, at, m.get('networks'));
      const special = pc.attachments.find((a) => a.network === 'host' || a.network === 'none');
      if (special && defsNamed(defs, special.network)?.external) {
        if (pc.attachments.length > 1) fail(`${at}.networks`, `network "${special.network}" cannot be combined with other networks`);
        pc.networkMode = special.network as 'host' | 'none';
        pc.attachments = [];
      }
    } else {
      if (m.get('networks') != null) fail(`${at}.network_mode`, '"network_mode" and "networks" cannot be combined');
      if (mode === 'host' || mode === 'none') pc.networkMode = mode;
      else if (mode === 'bridge') pc.attachments = [{ network: 'bridge', aliases: [] }];
      else if (mode.startsWith('service:')) {
        const target = mode.slice('service:'.length);
        if (!services.has(target)) fail(`${at}.network_mode`, `unknown service "${target}" (defined: ${[...services.keys()].join(', ')})`);
        if (pc.ports.length) fail(`${at}.ports`, 'conflicting options: port publishing and the container type network mode');
        if (hostname !== undefined) fail(`${at}.hostname`, 'conflicting options: hostname and the network mode');
        pc.networkMode = { sharesWith: target };
      } else fail(`${at}.network_mode`, `unsupported network mode "${mode}" (expected host, none, bridge or service:NAME)`);
    }
    if ((pc.networkMode === 'host' || pc.networkMode === 'none') && pc.ports.length) {
      warnings.push(`${fileName}: ${at}.ports: ${pc.networkMode === 'host' ? HOST_MODE_PORTS_WARNING : 'Published ports are discarded when using network mode none'}`);
      pc.ports = [];
    }
    drafts.set(svc, { at, pc, hasStatic: pc.attachments.some((a) => a.ip !== undefined) });
  }

  // service: chains must end; targets come before the services sharing them
  for (const [svc, d] of drafts) {
    const chain = [svc];
    for (let cur = d.pc.networkMode; typeof cur === 'object'; cur = drafts.get(cur.sharesWith)!.pc.networkMode) {
      const i = chain.indexOf(cur.sharesWith);
      if (i >= 0) fail(`services.${cur.sharesWith}.network_mode`, `network_mode cycle: ${[...chain.slice(i), cur.sharesWith].join(' -> ')}`);
      chain.push(cur.sharesWith);
    }
  }
  const order: PlannedContainer[] = [];
  const visit = (d: Draft): void => {
    if (order.includes(d.pc)) return;
    if (typeof d.pc.networkMode === 'object') visit(drafts.get(d.pc.networkMode.sharesWith)!);
    order.push(d.pc);
  };
  for (const d of drafts.values()) if (d.hasStatic) visit(d);
  for (const d of drafts.values()) visit(d);

  const published: { svc: string; p: PortBindingSpec }[] = [];
  for (const d of drafts.values()) {
    d.pc.ports.forEach((p, i) => {
      const o = published.find((x) => portClash(x.p, p));
      if (o) fail(`${d.at}.ports[${i}]`, `host port ${describeHostPort(p)} is already published by services.${o.svc}`);
      published.push({ svc: d.pc.service, p });
    });
  }

  const usedDefs = [...(defs.has('default') ? [] : [implicit]), ...defs.values()].filter((d) => used.has(d.key));
  usedDefs.forEach((d, i) => {
    const o = usedDefs.slice(0, i).find((x) => x.name === d.name);
    if (o && !(o.external && d.external)) fail(`networks.${d.key}.name`, `network name "${d.name}" is also used by networks.${o.key}`);
  });
  const networks = [...usedDefs.filter((d) => d.spec?.subnet), ...usedDefs.filter((d) => !d.spec?.subnet)].map(
    (d): PlannedNetwork => (d.external ? { key: d.key, name: d.name, external: true, spec: null } : { key: d.key, name: d.name, external: false, spec: d.spec! }),
  );
  return { project: proj, file: fileName, networks, containers: order, warnings };
}

function bridgeSpec(name: string, project: string, key: string): NetworkSpec {
  return { name, driver: 'bridge', internal: false, attachable: false, options: {}, labels: { [PROJECT_LABEL]: project, [NETWORK_LABEL]: key } };
}

type Guard = <T>(at: string, fn: () => T, strip?: RegExp) => T;

function declareNetworks(v: unknown, project: string, fail: Fail, guard: Guard, drivers: readonly string[]): Map<string, NetDef> {
  const defs = new Map<string, NetDef>();
  const subnets: { name: string; subnet: Cidr }[] = [];
  for (const [key, raw] of asMap(v, 'networks', fail)) {
    const at = `networks.${key}`;
    if (!KEY.test(key)) fail('networks', `invalid network key "${key}": only [a-zA-Z0-9._-] are allowed`);
    const m = asMap(raw, at, fail);
    checkKeys(m, at, NET_KEYS, fail);
    const given = optStr(m.get('name'), `${at}.name`, fail);
    const ext = m.get('external');
    const legacy = ext instanceof Map ? optStr(ext.get('name'), `${at}.external.name`, fail) : undefined;
    const external = ext instanceof Map || (optBool(ext, `${at}.external`, fail) ?? false);
    const name = given ?? (external ? (legacy ?? key) : `${project}_${key}`);
    if (!NETWORK_NAME.test(name)) fail(`${at}.name`, `invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (name.length > NAME_MAX) fail(`${at}.name`, `network name "${name.slice(0, 24)}…" is longer than ${NAME_MAX} characters`);
    if (external) {
      for (const k of m.keys()) if (k !== 'name' && k !== 'external' && !k.startsWith('x-')) fail(`${at}.${k}`, `conflicting parameters "external" and "${k}" specified`);
      defs.set(key, { key, name, external: true, spec: null, ipam: null });
      continue;
    }
    if ((BUILTIN_NETWORKS as readonly string[]).includes(name) || name === 'default') fail(`${at}.name`, `operation is not permitted on predefined ${name} network`);
    const driver = optStr(m.get('driver'), `${at}.driver`, fail) ?? 'bridge';
    if (!drivers.includes(driver)) fail(`${at}.driver`, `driver "${driver}" is not supported yet`);
    if (optBool(m.get('enable_ipv6'), `${at}.enable_ipv6`, fail)) fail(`${at}.enable_ipv6`, 'IPv6 is not supported');
    if (optBool(m.get('enable_ipv4'), `${at}.enable_ipv4`, fail) === false) fail(`${at}.enable_ipv4`, 'IPv4 cannot be disabled');
    const options = guard(`${at}.driver_opts`, () => validateRecord(dict(m.get('driver_opts'), `${at}.driver_opts`, fail), 'option'));
    if (driver === 'bridge') guard(`${at}.driver_opts`, () => validateBridgeOptions(options));
    if (driver === 'overlay') guard(`${at}.driver_opts`, () => validateOverlayOptions(options));
    if (driver === 'macvlan' || driver === 'ipvlan') guard(`${at}.driver_opts`, () => validateParentOptions(driver, options));
    const labels = guard(`${at}.labels`, () => validateRecord(dict(m.get('labels'), `${at}.labels`, fail), 'label'));
    const spec: NetworkSpec = {
      ...bridgeSpec(name, project, key),
      driver,
      internal: optBool(m.get('internal'), `${at}.internal`, fail) ?? false,
      attachable: optBool(m.get('attachable'), `${at}.attachable`, fail) ?? false,
      options,
      labels: { ...labels, [PROJECT_LABEL]: project, [NETWORK_LABEL]: key },
    };
    let ipam: IpamConfig | null = null;
    const im = asMap(m.get('ipam'), `${at}.ipam`, fail);
    checkKeys(im, `${at}.ipam`, IPAM_KEYS, fail);
    const idrv = optStr(im.get('driver'), `${at}.ipam.driver`, fail);
    if (idrv !== undefined && idrv !== 'default') fail(`${at}.ipam.driver`, `IPAM driver "${idrv}" is not supported`);
    const cfgs = im.get('config') ?? [];
    if (!Array.isArray(cfgs)) fail(`${at}.ipam.config`, 'must be a list');
    if (cfgs.length > 1) fail(`${at}.ipam.config`, `only one entry is supported, got ${cfgs.length}`);
    if (cfgs.length === 1) {
      const cat = `${at}.ipam.config[0]`;
      const c = asMap(cfgs[0], cat, fail);
      checkKeys(c, cat, POOL_KEYS, fail);
      const req = { subnet: optStr(c.get('subnet'), `${cat}.subnet`, fail), gateway: optStr(c.get('gateway'), `${cat}.gateway`, fail), ipRange: optStr(c.get('ip_range'), `${cat}.ip_range`, fail) };
      if (req.subnet || req.gateway || req.ipRange) {
        const cfg = guard(cat, () => resolveIpamConfig(req, subnets));
        ipam = cfg;
        subnets.push({ name, subnet: cfg.subnet });
        spec.subnet = formatCidr(cfg.subnet);
        if (req.gateway) spec.gateway = formatIp(cfg.gateway);
        if (cfg.ipRange) spec.ipRange = formatCidr(cfg.ipRange);
      }
    }
    defs.set(key, { key, name, external: false, spec, ipam });
  }
  return defs;
}

function defsNamed(defs: Map<string, NetDef>, name: string): NetDef | undefined {
  return [...defs.values()].find((d) => d.name === name);
}

// ---------------------------------------------------------- against a daemon

/** Throws `FILE: networks.KEY: network NAME declared as external, but could not be found` for the first missing one. */
export function checkExternal(plan: ComposePlan, existingNames: Iterable<string>): void {
  const have = new Set(existingNames);
  for (const n of plan.networks) {
    if (n.external && !have.has(n.name)) throw new Error(`${plan.file}: networks.${n.key}: network ${n.name} declared as external, but could not be found`);
  }
}

/** What `State.createContainer` takes for a planned container; null for `service:` (the daemon joins the target's namespace). */
export function containerSpec(c: PlannedContainer, plan?: ComposePlan): ContainerSpec | null {
  if (typeof c.networkMode === 'object') {
    const svc = c.networkMode.sharesWith;
    const target = plan?.containers.find((x) => x.service === svc);
    return target ? { name: c.name, network: `container:${target.name}`, hostname: c.hostname } : null;
  }
  const first = c.attachments[0];
  const network = c.networkMode === 'default' ? first!.network : c.networkMode;
  return { name: c.name, network, ip: first?.ip, aliases: first?.aliases ?? [], hostname: c.hostname, ports: c.ports };
}

/**
 * Dry run: apply the plan to a copy of `state` (after removing the project's
 * current containers, which `up` recreates) and throw the first error, as
 * `FILE: services.X: …` / `FILE: networks.K: …`. Existing networks of the
 * project (same labels) are reused as they are.
 */
export function checkPlan(plan: ComposePlan, state: State): void {
  const sim = State.fromJSON(state.toJSON(), state.options);
  checkExternal(plan, sim.networks().map((n) => n.name));
  for (const name of downPlan(plan.project, sim, plan).containers) sim.removeContainer(name);
  const wrap = (at: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      throw new Error(`${plan.file}: ${at}: ${(e as Error).message}`);
    }
  };
  for (const n of plan.networks) {
    if (n.external) continue;
    const have = sim.networks().find((x) => x.name === n.name);
    wrap(`networks.${n.key}`, () => {
      if (!have) return void sim.createNetwork(n.spec);
      const bad = have.labels[NETWORK_LABEL] !== n.key ? NETWORK_LABEL : have.labels[PROJECT_LABEL] !== plan.project ? PROJECT_LABEL : null;
      if (bad) throw new Error(`network ${n.name} was found but has incorrect label ${bad} set to "${have.labels[bad] ?? ''}"`);
    });
  }
  for (const c of plan.containers) {
    const spec = containerSpec(c, plan);
    if (!spec) continue;
    wrap(`services.${c.service}`, () => {
      sim.createContainer(spec);
      for (const a of c.attachments.slice(1)) sim.connect(a.network, c.name, { ip: a.ip, aliases: a.aliases });
    });
  }
}

export interface DownPlan {
  /** Remove first, in this order (reverse creation: namespace sharers before their targets). */
  containers: string[];
  /** Then these (reverse creation order); never external networks. */
  networks: string[];
}

/**
 * What `usernet down` removes. Networks: those labelled with the project.
 * Containers: labelled with the project where the record carries labels;
 * else, with a plan, the plan's container names; else the names Compose
 * gives (`<project>-<service>-<n>`).
 */
export function downPlan(project: string, state: Pick<State, 'networks' | 'containers'>, plan?: ComposePlan): DownPlan {
  const names = new Set(plan?.containers.map((c) => c.name) ?? []);
  const pattern = new RegExp(`^${project.replace(/[^a-z0-9]/g, '\\$&')}-[a-zA-Z0-9._-]+-[0-9]+$`);
  const mine = (c: Container): boolean => {
    const labels = (c as Container & { labels?: Record<string, string> }).labels;
    if (labels && labels[PROJECT_LABEL] !== undefined) return labels[PROJECT_LABEL] === project;
    return plan ? names.has(c.name) : pattern.test(c.name);
  };
  return {
    containers: state.containers().filter(mine).map((c) => c.name).reverse(),
    networks: state.networks().filter((n: Network) => !n.builtin && n.labels[PROJECT_LABEL] === project).map((n) => n.name).reverse(),
  };
}
