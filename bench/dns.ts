/**
 * bench/dns — in-process embedded-DNS throughput (queries/s answered from
 * the name table by DnsResolver.handle).
 *
 * Setup: a State with 4 user-defined networks and 1000 containers (250 a
 * network, so 1k container names, plus their short ids and hostnames in the
 * table), and an asking container on all 4 networks. Pre-encoded queries
 * (dns-packet), one per container, in a shuffled order: A by container name,
 * PTR by address, and a name nobody has (NXDOMAIN, no upstream configured).
 * A round is one pass over the 1000 queries, each awaited in turn (decode,
 * table lookup, encode — the whole handle() path a socket would call);
 * rounds repeat until ≥ `seconds` have passed. value = queries / total
 * time; the note gives the median round's rate.
 *
 * This is the in-process half of the benchmark; the end-to-end
 * figure (a dnsperf-style client loop against 127.0.0.11 through the
 * daemon's sockets) comes with the daemon wiring. No anchor.
 */
import * as dnsPacket from 'dns-packet';
import { State } from '../src/control/model.js';
import { type DnsAsker, DnsResolver, DnsTable } from '../src/services/dns.js';
import type { Row } from './table.js';

export interface DnsBenchOptions {
  /** seconds per case (default 1) */
  seconds?: number;
  /** containers (default 1000) */
  names?: number;
}

const NETWORKS = 4;

function shuffled<T>(xs: T[], seed = 42): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function run(r: DnsResolver, queries: Buffer[], asker: DnsAsker, seconds: number): Promise<{ qps: number; p50: number }> {
  const rates: number[] = [];
  let total = 0;
  let spent = 0;
  // warm-up round
  for (const q of queries) await r.handle(q, asker, 'udp');
  while (spent < seconds * 1000) {
    const t0 = performance.now();
    for (const q of queries) await r.handle(q, asker, 'udp');
    const dt = performance.now() - t0;
    spent += dt;
    total += queries.length;
    rates.push(queries.length / (dt / 1000));
  }
  rates.sort((a, b) => a - b);
  return { qps: total / (spent / 1000), p50: rates[Math.floor(rates.length / 2)]! };
}

export async function benchDns(opts: DnsBenchOptions = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 1;
  const count = opts.names ?? 1000;
  const st = new State();
  const nets = Array.from({ length: NETWORKS }, (_, i) => st.createNetwork({ name: `bench${i}` }));
  const ctrs = Array.from({ length: count }, (_, i) => st.createContainer({ name: `svc-${i}`, network: nets[i % NETWORKS]!.name }));
  st.createContainer({ name: 'client', network: nets[0]!.name });
  for (const n of nets.slice(1)) st.connect(n.name, 'client');
  const table = new DnsTable();
  table.update(st.networks(), st.containers());
  const resolver = new DnsResolver(table, { upstreams: [] });
  const asker: DnsAsker = { networks: st.findContainer('client').endpoints.map((e) => e.networkId), internalOnly: false };

  const enc = (name: string, type: dnsPacket.RecordType, id: number): Buffer =>
    dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
  const order = shuffled(ctrs.map((_, i) => i));
  const cases: { name: string; queries: Buffer[] }[] = [
    { name: `dns A from table (${count} names, 4 networks)`, queries: order.map((i) => enc(ctrs[i]!.name, 'A', i)) },
    { name: `dns PTR from table (${count} addresses)`, queries: order.map((i) => enc(`${ctrs[i]!.endpoints[0]!.ip.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR', i)) },
    { name: 'dns unknown name, NXDOMAIN (no upstream)', queries: order.map((i) => enc(`nobody-${i}.example`, 'A', i)) },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    const r = await run(resolver, c.queries, asker, seconds);
    rows.push({ name: c.name, value: Math.round(r.qps), unit: 'queries/s', note: `in-process DnsResolver.handle, median round ${Math.round(r.p50)}/s` });
  }
  return rows;
}
