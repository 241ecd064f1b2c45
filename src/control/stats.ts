/** The `usernet stats` report and its table (cold path). */
import { Counters, type CounterSnapshot } from '../dataplane/counters.js';
import type { State } from './model.js';
import type { Runtime } from './runtime.js';

export interface StatsReport {
  pool: { capacity: number; inUse: number; exhausted: number };
  breaths: number;
  router: CounterSnapshot;
  conntrack: { flows: number; capacity: number };
  links: Array<{ name: string } & CounterSnapshot>;
  networks: Array<{
    name: string;
    macEntries: number;
    switch: CounterSnapshot;
    gateway: CounterSnapshot;
    ports: Array<{ name: string } & CounterSnapshot>;
  }>;
}

function reasons(c: CounterSnapshot): string {
  return Object.entries(c.dropReasons)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function statsTable(r: StatsReport): string {
  const rows: string[][] = [['NETWORK', 'PORT', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'DROPS', 'DROP REASONS']];
  const row = (net: string, port: string, c: CounterSnapshot) =>
    rows.push([net, port, String(c.rxPackets), String(c.rxBytes), String(c.txPackets), String(c.txBytes), String(c.drops), reasons(c)]);
  row('-', '(router)', r.router);
  for (const l of r.links) row('-', l.name, l);
  for (const n of r.networks) {
    row(n.name, `(switch, ${n.macEntries} MACs)`, n.switch);
    row(n.name, '(gateway)', n.gateway);
    for (const p of n.ports) row(n.name, p.name, p);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('   ').trimEnd());
  lines.push(`pool: ${r.pool.inUse}/${r.pool.capacity} frames in use, ${r.pool.exhausted} allocation failures; ${r.breaths} breaths`);
  lines.push(`conntrack: ${r.conntrack.flows}/${r.conntrack.capacity} flows`);
  return lines.join('\n') + '\n';
}

/** Gather the report from the state and the live dataplane. */
export function collectStats(state: State, rt: Runtime): StatsReport {
  const networks = [];
  for (const n of state.networks()) {
    const live = rt.networks.get(n.id);
    const parent = rt.parents.nets.get(n.id);
    if (!live && !parent) continue;
    const ports = [];
    for (const c of state.containers())
      for (const ep of rt.endpointsOf(c.id))
        if (ep.networkId === n.id) ports.push({ name: `${c.name}:${ep.ifname}`, ...ep.dev.port.counters.snapshot() });
    for (const [name, a] of rt.attachments) if (a.networkId === n.id) ports.push({ name: `${name} (attach)`, ...a.dev.port.counters.snapshot() });
    const vx = rt.overlay?.portOf(n.id);
    if (vx) ports.push({ name: `(vxlan vni ${vx.vni})`, ...vx.port.counters.snapshot() });
    networks.push({
      name: n.name,
      // macvlan/ipvlan: the element's counters stand for the switch; there is no gateway of usernet's
      macEntries: live ? live.sw.macTable().length : parent!.ports.size,
      switch: live ? live.sw.counters.snapshot() : parent!.element.counters.snapshot(),
      gateway: live ? rt.router.ifaceCounters(live.iface).snapshot() : new Counters().snapshot(),
      ports,
    });
  }
  const links = [];
  for (const [name, link] of [
    ['uplink', rt.uplink],
    ['host-link', rt.hostLink],
  ] as const)
    if (link) links.push({ name: `${name} ${link.dev.ifname}`, ...link.dev.port.counters.snapshot() });
  for (const t of rt.overlay?.counters() ?? []) links.push({ name: `vtep udp/${t.udpPort}`, ...t.tunnel });
  return {
    pool: { capacity: rt.pool.capacity, inUse: rt.pool.inUse, exhausted: rt.pool.exhausted },
    breaths: rt.engine.breaths,
    router: rt.router.counters.snapshot(),
    conntrack: { flows: rt.conntrack.size, capacity: rt.conntrack.capacity },
    links,
    networks,
  };
}
