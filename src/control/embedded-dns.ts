/**
 * The embedded DNS as the daemon runs it: one name table (rebuilt on every
 * state change), one resolver, and per container a resolver endpoint
 * inside its namespace. As Docker does, the endpoint listens on a free high
 * port and 127.0.0.11:53 is DNATed to it in the namespace, so a container
 * may still run a DNS server of its own on port 53; resolv.conf (through
 * /etc/netns/<ns>/) names 127.0.0.11.
 */
import type { Logger } from 'pino';
import { DnsResolver, DnsTable, type DnsAsker } from '../services/dns.js';
import { ContainerDns, removeResolvConf, writeResolvConf } from '../services/dns-server.js';
import type { Container, Network, State } from './model.js';
import { redirectDns } from './netns.js';

export class EmbeddedDns {
  readonly table = new DnsTable();
  readonly resolver: DnsResolver;
  private readonly servers = new Map<string, ContainerDns>();
  /** containers on other hosts (overlay endpoints from the cluster), named like local ones */
  remote: (() => readonly Container[]) | null = null;

  constructor(
    private readonly state: State,
    upstreams: readonly string[],
    private readonly log: Logger,
  ) {
    this.resolver = new DnsResolver(this.table, { upstreams: [...upstreams] });
    this.refresh();
  }

  /** Call after every state change. */
  refresh(): void {
    const remote = this.remote?.() ?? [];
    this.table.update(this.state.networks(), remote.length ? [...this.state.containers(), ...remote] : this.state.containers());
  }

  /** Who is asking: the container's networks as they are now. */
  asker(id: string): DnsAsker {
    const c = this.state.lookupContainer(id);
    const nets = (c?.endpoints ?? []).map((e) => this.state.networkById(e.networkId)).filter((n): n is Network => !!n);
    return { networks: nets.map((n) => n.id), internalOnly: nets.length > 0 && nets.every((n) => n.internal) };
  }

  /** A resolver endpoint for a container with its own namespace. */
  async start(c: Container, netns: string): Promise<void> {
    this.refresh();
    const srv = new ContainerDns(this.resolver, () => this.asker(c.id), this.log);
    await srv.start(netns, { ip: '127.0.0.11', port: 0 });
    this.servers.set(c.id, srv);
    await redirectDns(netns, srv.address!.port);
    await writeResolvConf(netns, ['nameserver 127.0.0.11', 'options ndots:0']);
  }

  async stop(c: Container, netns: string | null): Promise<void> {
    const srv = this.servers.get(c.id);
    this.servers.delete(c.id);
    if (srv) await srv.stop().catch(() => undefined);
    if (netns !== null) await removeResolvConf(netns).catch(() => undefined);
  }
}
