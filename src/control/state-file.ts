/** Checks a stored state file record by record (State.fromJSON uses it): every field typed, else `invalid state file: …`. */
import {
  gatewayMac,
  isIp,
  parseMac,
  resolveIpamConfig,
} from '../services/ipam.js';
import {
  CONTAINER_NAME,
  type Container,
  DRIVERS,
  type Driver,
  NETWORK_NAME,
  type Network,
  type NetworkMode,
} from './records.js';
export type Fail = (why: string) => never;

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

export function checkNetwork(raw: unknown, fail: Fail): Network {
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
  if (o.scope !== 'local' && o.scope !== 'swarm') fail(`${where}: scope must be local or swarm`);
  const id = hexId(o, 'id', fail, where);
  const gwMac = str(o, 'gatewayMac', fail, where);
  if (gwMac !== gatewayMac(id)) fail(`${where}: gatewayMac does not match the id`);
  return {
    id,
    gatewayMac: gwMac,
    name,
    driver,
    scope: o.scope as 'local' | 'swarm',
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

export function checkContainer(raw: unknown, fail: Fail): Container {
  const o = obj(raw, fail, 'container');
  const where = `container ${String(o.name)}`;
  const name = str(o, 'name', fail, where);
  if (!CONTAINER_NAME.test(name)) fail(`${where}: bad name`);
  const mode = str(o, 'networkMode', fail, where) as NetworkMode;
  if (!['default', 'host', 'none', 'container'].includes(mode)) fail(`${where}: bad networkMode`);
  const sharesWith = mode === 'container' ? str(o, 'sharesWith', fail, where) : undefined;
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
    ...(sharesWith ? { sharesWith } : {}),
    endpoints,
    ports,
    created: str(o, 'created', fail, where),
  };
}

