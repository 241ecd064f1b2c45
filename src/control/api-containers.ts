/**
 * The daemon's container API: list, inspect, create, remove and `port`.
 * Each mutating operation runs inside Daemon.serial() (the dispatch in
 * daemon.ts wraps it) and persists the state when it succeeds.
 */
import type { ContainerCreate } from './api-schema.js';
import type { Daemon } from './daemon.js';
import { inspectContainer, psTable } from './format.js';
import { formatPortBinding, HOST_MODE_PORTS_WARNING, parsePublish, type Container } from './model.js';
import { AddressConflict } from './overlay-control.js';

/** `GET containers`: every container, inspected or as the `ps` table. */
export function listContainers(d: Daemon, table: boolean): unknown {
  const cs = d.state.containers();
  return table ? { table: psTable(cs), ids: cs.map((c) => c.id) } : cs.map((c) => inspectCtr(d, c));
}

/** `docker inspect`, with the container's namespace and the daemon's pid. */
export function inspectCtr(d: Daemon, c: Container): unknown {
  return { ...(inspectContainer(c, d.state) as object), Netns: d.netnsName(c), DaemonPid: process.pid };
}

/** `POST containers`: made in the state, then brought up; undone if that fails. */
export async function createContainer(d: Daemon, b: ContainerCreate): Promise<{ Id: string; Warnings: string[] }> {
  const warnings: string[] = [];
  const ports = (b.publish ?? []).map((spec) => parsePublish(spec));
  const mode = b.network === 'host' || b.network === 'none';
  if (ports.length && mode) warnings.push(b.network === 'host' ? HOST_MODE_PORTS_WARNING : 'Published ports are discarded when using none network mode');
  let c: Container;
  // another host may claim the address we picked first (overlay): pick again, a few times
  for (let attempt = 0; ; attempt++) {
    c = d.state.createContainer({
      name: b.name,
      network: b.network ?? 'bridge',
      ip: b.ip,
      aliases: b.aliases ?? [],
      hostname: b.hostname,
      mac: b.mac,
      ports: mode ? [] : ports,
    });
    try {
      await d.bringUpContainer(c);
      break;
    } catch (e) {
      d.state.removeContainer(c.id);
      if (e instanceof AddressConflict && !b.ip && attempt < 8) continue;
      throw e;
    }
  }
  d.persist();
  d.log.info({ container: c.name }, 'container created');
  return { Id: c.id, Warnings: warnings };
}

/** `DELETE containers/:x` */
export async function removeContainer(d: Daemon, ref: string): Promise<{ removed: string }> {
  const c = d.state.findContainer(ref);
  await d.bringDownContainer(c);
  d.state.removeContainer(c.id);
  d.persist();
  return { removed: c.name };
}

/** `GET containers/:x/port`: the published ports, as `docker port` prints them. */
export function containerPorts(d: Daemon, ref: string): unknown {
  const c = d.state.findContainer(ref);
  return { lines: c.ports.map((b) => `${b.containerPort}/${b.proto} -> ${b.hostIp}:${b.hostPort}`), bindings: c.ports.map(formatPortBinding) };
}
