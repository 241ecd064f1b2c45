/**
 * The daemon's network API: list, inspect, create, remove, prune, connect
 * and disconnect. Each mutating operation runs inside Daemon.serial() (the
 * dispatch in daemon.ts wraps it) and persists the state when it succeeds.
 */
import type { NetworkConnect, NetworkCreate, NetworkDisconnect } from './api-schema.js';
import type { Daemon } from './daemon.js';
import { inspectNetwork, networkLsTable } from './format.js';
import { networkPrefixLen, type Network, type State } from './model.js';
import { AddressConflict } from './overlay-control.js';

/** `GET networks`: every network, inspected or as the `network ls` table. */
export function listNetworks(d: Daemon, table: boolean): unknown {
  const nets = d.state.networks();
  return table ? { table: networkLsTable(nets), ids: nets.map((n) => n.id) } : nets.map((n) => inspectNet(d, n));
}

/** `docker network inspect`, with the overlay's view (VTEPs, endpoints on other hosts). */
export function inspectNet(d: Daemon, n: Network): unknown {
  const out = inspectNetwork(n, d.state.containers()) as unknown as Record<string, unknown>;
  if (n.driver === 'overlay' && d.overlay) {
    out.Overlay = d.overlay.describe(n);
    // endpoints on other hosts, as `docker network inspect` lists them on a swarm network
    const remote = d.overlay.remoteContainers().filter((c) => c.endpoints.some((e) => e.networkId === n.id));
    if (remote.length) out.Peers = remote.map((c) => ({ Name: c.name, IP: c.endpoints.find((e) => e.networkId === n.id)!.ip }));
  }
  return out;
}

/** `POST networks`: an overlay network goes through the cluster; undone if it cannot be brought up. */
export async function createNetwork(d: Daemon, b: NetworkCreate): Promise<unknown> {
  const spec = {
    name: b.name,
    driver: b.driver,
    subnet: b.subnet,
    gateway: b.gateway,
    ipRange: b.ipRange,
    internal: b.internal ?? false,
    attachable: b.attachable ?? false,
    options: b.options ?? {},
    labels: b.labels ?? {},
  };
  const overlay = b.driver === 'overlay' && d.overlay;
  const n = overlay ? await overlay.createNetwork(spec) : d.state.createNetwork(spec);
  try {
    await d.bringUpNetwork(n);
  } catch (e) {
    d.runtime.removeNetwork(n.id, n.subnet ?? undefined);
    d.state.removeNetwork(n.id);
    if (overlay) await overlay.removeNetwork(n).catch(() => undefined);
    throw e;
  }
  d.persist();
  d.log.info({ network: n.name, subnet: n.subnet }, 'network created');
  return inspectNet(d, n);
}

/** `DELETE networks/:x`: the state is restored if the cluster refuses (in use on another host). */
export async function removeNetwork(d: Daemon, ref: string): Promise<unknown> {
  const before = d.state.toJSON();
  const n = d.state.removeNetwork(ref);
  try {
    await d.overlay?.removeNetwork(n);
  } catch (e) {
    d.state.restore(before);
    throw e;
  }
  d.runtime.removeNetwork(n.id, n.subnet ?? undefined);
  d.persist();
  return { removed: n.name };
}

/** `POST networks/prune`: unused networks; overlay networks in use on another host stay. */
export async function pruneNetworks(d: Daemon): Promise<unknown> {
  const before = d.state.toJSON();
  const pruned = d.state.prune();
  const removed: Network[] = [];
  const kept = new Set<string>();
  for (const n of pruned) {
    try {
      await d.overlay?.removeNetwork(n);
      removed.push(n);
    } catch {
      kept.add(n.id); // in use on another host
    }
  }
  if (kept.size) {
    d.state.restore(before);
    for (const n of removed) d.state.removeNetwork(n.id);
  }
  for (const n of removed) d.runtime.removeNetwork(n.id, n.subnet ?? undefined);
  d.persist();
  return { removed: removed.map((n) => n.name) };
}

/**
 * `POST networks/:x/connect`: another host may claim the address picked
 * first (overlay): pick again, a few times, unless one was given.
 */
export async function connectNetwork(d: Daemon, ref: string, b: NetworkConnect): Promise<unknown> {
  const before = d.state.toJSON();
  let att: ReturnType<State['connect']>;
  for (let attempt = 0; ; attempt++) {
    att = d.state.connect(ref, b.container, { ip: b.ip, aliases: b.aliases ?? [] });
    try {
      await d.overlay?.register(att.container, [att.endpoint]);
      break;
    } catch (e) {
      d.state.restore(before);
      if (e instanceof AddressConflict && !b.ip && attempt < 8) continue;
      throw e;
    }
  }
  const { container: c, endpoint: ep, network: n } = att;
  try {
    await d.runtime.plug(c.id, n.id, { ifname: ep.ifname, mac: ep.mac, cidr: `${ep.ip}/${networkPrefixLen(n)}` });
    await d.routeContainer(c);
  } catch (e) {
    d.runtime.unplug(c.id, n.id);
    await d.overlay?.unregister(c, [ep]);
    d.state.restore(before);
    throw e;
  }
  d.persist();
  return { connected: n.name };
}

/** `POST networks/:x/disconnect` */
export async function disconnectNetwork(d: Daemon, ref: string, b: NetworkDisconnect): Promise<unknown> {
  const { container: c, network: n, endpoint: ep } = d.state.disconnect(ref, b.container);
  d.runtime.unplug(c.id, n.id);
  await d.overlay?.unregister(c, [ep]);
  await d.routeContainer(c);
  d.persist();
  return { disconnected: n.name };
}
