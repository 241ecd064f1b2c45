/**
 * The `usernet stats` report and its table (cold path).
 *
 * Besides the traffic counters (per router, link, switch, gateway and
 * port: packets, bytes, and the wire segments they stand for — a
 * super-frame (GSO) is one packet and gsoSegments segments) the report says how full every bounded table is and what happened
 * when one was full, so a flood is visible:
 *   per network: MAC entries used/capacity (static/learned), the port
 *     limit, sources not learned (table full, port limit), spoofed pinned
 *     MACs dropped; the gateway iface's ARP share (learned/quota,
 *     permanent, quota hits);
 *   router: ARP entries/capacity, table full, quota evictions, unresolved,
 *     conflicts; ICMP errors sent/rate-limited; NAT ports exhausted;
 *     conntrack full (as the router saw it);
 *   conntrack: flows/capacity and every field of conntrack.counters (read
 *     generically, so counters added there show up here).
 */
import { Counters, type CounterSnapshot } from '../dataplane/counters.js';
import type { RouterStats } from '../router/router.js';
import type { MacStats } from '../switch/learning-switch.js';
import type { State } from './model.js';
import type { Runtime } from './runtime.js';

export interface ArpShare {
  /** learned entries of the network's gateway iface, and the most it may hold */
  dynamic: number;
  quota: number;
  /** permanent entries (the network's containers) */
  static: number;
  /** new entries that found the iface at its quota (its own oldest was evicted) */
  quotaHits: number;
}

export interface StatsReport {
  pool: { capacity: number; inUse: number; exhausted: number; large?: { capacity: number; available: number; exhausted: number } };
  breaths: number;
  /** the addon's own drops: frames too long for a slot, malformed virtio-net headers, super-frames handed to an fd that takes none */
  addon?: { oversized: number; badVnet: number; noGso: number };
  router: CounterSnapshot;
  /** the router's event counters and ARP cache use */
  routerEvents: RouterStats;
  /** flows/capacity and every conntrack counter */
  conntrack: { flows: number; capacity: number; counters: Record<string, number> };
  links: Array<{ name: string } & CounterSnapshot>;
  networks: Array<{
    name: string;
    macEntries: number;
    /** MAC table and port security (null: macvlan/ipvlan, no learning switch) */
    mac: MacStats | null;
    /** the gateway iface's ARP share (null: no gateway of usernet's) */
    arp: ArpShare | null;
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

/** Rows of cells, columns padded to their widest cell. */
function grid(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('   ').trimEnd());
}

export function statsTable(r: StatsReport): string {
  const rows: string[][] = [['NETWORK', 'PORT', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'RX SEGS', 'TX SEGS', 'DROPS', 'DROP REASONS']];
  const row = (net: string, port: string, c: CounterSnapshot) =>
    rows.push([net, port, String(c.rxPackets), String(c.rxBytes), String(c.txPackets), String(c.txBytes), String(c.rxSegments ?? 0), String(c.txSegments ?? 0), String(c.drops), reasons(c)]); // prettier-ignore
  row('-', '(router)', r.router);
  for (const l of r.links) row('-', l.name, l);
  for (const n of r.networks) {
    row(n.name, `(switch, ${n.macEntries} MACs)`, n.switch);
    row(n.name, '(gateway)', n.gateway);
    for (const p of n.ports) row(n.name, p.name, p);
  }
  const lines = grid(rows);
  // how full each network's tables are, and what a full one refused
  const tables: string[][] = [['NETWORK', 'MACS', 'STATIC', 'LEARNED', 'PORT LIMIT', 'MAC FULL', 'LIMIT HITS', 'SPOOF DROPS', 'ARP LEARNED', 'ARP PERM', 'ARP QUOTA HITS']];
  for (const n of r.networks) {
    const m = n.mac;
    const a = n.arp;
    tables.push([
      n.name,
      m ? `${m.entries}/${m.capacity}` : String(n.macEntries),
      m ? String(m.static) : '-',
      m ? String(m.dynamic) : '-',
      m ? (m.portLimit > 0 ? String(m.portLimit) : 'none') : '-',
      m ? String(m.macTableFull) : '-',
      m ? String(m.portLimitHits) : '-',
      m ? String(m.macSpoof) : '-',
      a ? `${a.dynamic}/${a.quota}` : '-',
      a ? String(a.static) : '-',
      a ? String(a.quotaHits) : '-',
    ]);
  }
  if (r.networks.length > 0) lines.push('', ...grid(tables), '');
  const e = r.routerEvents;
  lines.push(`pool: ${r.pool.inUse}/${r.pool.capacity} frames in use, ${r.pool.exhausted} allocation failures; ${r.breaths} breaths`);
  if (r.pool.large) lines.push(`large slots (super-frames): ${r.pool.large.capacity - r.pool.large.available}/${r.pool.large.capacity} in use, ${r.pool.large.exhausted} allocation failures`);
  if (r.addon) lines.push(`addon: oversized ${r.addon.oversized}, bad virtio-net headers ${r.addon.badVnet}, super-frames refused by fds without offloads ${r.addon.noGso}`);
  lines.push(
    `arp: ${e.arpDynamic}/${e.arpCapacity} learned (quota ${e.arpIfaceQuota} per network), ${e.arpStatic}/${e.arpStaticCapacity} permanent; ` +
      `table full ${e.arpTableFull}, quota evictions ${e.arpQuotaEvicted}, refused ${e.arpCacheFull}, unresolved ${e.arpUnresolved}, conflicts ${e.arpConflicts}, permanent refused ${e.arpStaticFull}`,
  );
  lines.push(`router: icmp errors ${e.icmpErrorsSent} sent, ${e.icmpRateLimited} rate-limited; nat ports exhausted ${e.natPortsExhausted}; conntrack full ${e.conntrackFull}; rst ${e.rstSent}; fragments ${e.fragmentsMade}; super-frames segmented ${e.gsoSegmented ?? 0} (${e.segmentsMade ?? 0} segments)`);
  const cc = Object.entries(r.conntrack.counters)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  lines.push(`conntrack: ${r.conntrack.flows}/${r.conntrack.capacity} flows${cc ? `; ${cc}` : ''}`);
  return lines.join('\n') + '\n';
}

/** Every numeric field of a counters object (so counters added later show up). */
function numericFields(o: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number') out[k] = v;
  return out;
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
    const mac = live ? live.sw.macStats() : null;
    const share = live ? rt.router.arpIfaceStats(live.iface) : null;
    networks.push({
      name: n.name,
      // macvlan/ipvlan: the element's counters stand for the switch; there is no gateway of usernet's
      macEntries: mac ? mac.entries : parent!.ports.size,
      mac,
      arp: share,
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
    pool: { capacity: rt.pool.capacity, inUse: rt.pool.inUse, exhausted: rt.pool.exhausted, large: { capacity: rt.pool.largeCapacity, available: rt.pool.largeAvailable, exhausted: rt.pool.largeExhausted } },
    addon: addonDrops(rt.native.stats()),
    breaths: rt.engine.breaths,
    router: rt.router.counters.snapshot(),
    routerEvents: rt.router.stats(),
    conntrack: { flows: rt.conntrack.size, capacity: rt.conntrack.capacity, counters: numericFields(rt.conntrack.counters) },
    links,
    networks,
  };
}

/** The addon's drop counters (its stats() also has watchers, not a drop). */
function addonDrops(s: { oversized: number; badVnet: number; noGso: number }): { oversized: number; badVnet: number; noGso: number } {
  return { oversized: s.oversized, badVnet: s.badVnet, noGso: s.noGso };
}
