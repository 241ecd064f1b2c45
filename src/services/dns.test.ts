import * as dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { type Container, State, shortId } from '../control/model.js';
import { type DnsAsker, DnsResolver, DnsTable, LOCAL_TTL, reverseIp } from './dns.js';

/** dns-packet's decode, with the fields its type declarations leave out. */
type Reply = dnsPacket.DecodedPacket & { rcode: string; opcode: string };
const decode = (b: Buffer): Reply => dnsPacket.decode(b) as Reply;

const RD = dnsPacket.RECURSION_DESIRED;

function query(name: string, type: dnsPacket.RecordType = 'A', id = 7, extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: RD, questions: [{ name, type, class: 'IN' }], ...extra });
}

function asker(c: Container, internalOnly = false): DnsAsker {
  return { networks: c.endpoints.map((e) => e.networkId), internalOnly };
}

function ipOn(c: Container, network: string): string {
  return c.endpoints.find((e) => e.network === network)!.ip;
}

/** web on frontend; app on frontend (alias api) and backend (alias svc); db on backend; solo on the default bridge. */
function world() {
  const st = new State();
  st.createNetwork({ name: 'frontend' });
  st.createNetwork({ name: 'backend' });
  st.createContainer({ name: 'web', network: 'frontend', hostname: 'webhost' });
  st.createContainer({ name: 'app', network: 'frontend', aliases: ['api'] });
  st.connect('backend', 'app', { aliases: ['svc'] });
  st.createContainer({ name: 'db', network: 'backend' });
  st.createContainer({ name: 'solo', network: 'bridge' });
  st.createContainer({ name: 'solo2', network: 'bridge' });
  const table = new DnsTable();
  table.update(st.networks(), st.containers());
  const resolver = new DnsResolver(table, { upstreams: [] });
  const c = (name: string): Container => st.findContainer(name);
  const ask = async (from: string, name: string, type: dnsPacket.RecordType = 'A', transport: 'udp' | 'tcp' = 'udp') => {
    const reply = await resolver.handle(query(name, type), asker(c(from)), transport);
    expect(reply).not.toBeNull();
    return decode(reply!);
  };
  return { st, table, resolver, c, ask };
}

const data = (p: Reply): unknown[] => (p.answers ?? []).map((a) => (a as { data: unknown }).data);

describe('DnsTable + DnsResolver: local names', () => {
  it('answers only for containers sharing a network, with the address on the shared network', async () => {
    const { c, ask } = world();
    const web = await ask('web', 'app');
    expect(web.rcode).toBe('NOERROR');
    expect(data(web)).toEqual([ipOn(c('app'), 'frontend')]);
    const db = await ask('db', 'app');
    expect(data(db)).toEqual([ipOn(c('app'), 'backend')]);
    expect(ipOn(c('app'), 'backend')).not.toBe(ipOn(c('app'), 'frontend'));
    // app sees both sides
    expect(data(await ask('app', 'web'))).toEqual([ipOn(c('web'), 'frontend')]);
    expect(data(await ask('app', 'db'))).toEqual([ipOn(c('db'), 'backend')]);
    // web and db share nothing
    expect((await ask('web', 'db')).rcode).toBe('NXDOMAIN');
    expect((await ask('db', 'web')).rcode).toBe('NXDOMAIN');
  });

  it('answers like Docker: TTL 600, QR RD RA, not authoritative, the question echoed', async () => {
    const { ask } = world();
    const p = await ask('web', 'app');
    expect(p.id).toBe(7);
    expect(p.type).toBe('response');
    expect(p.flag_rd && p.flag_ra).toBe(true);
    expect(p.flag_aa).toBe(false);
    expect(p.questions).toEqual([{ name: 'app', type: 'A', class: 'IN' }]);
    expect(p.answers![0]).toMatchObject({ name: 'app', type: 'A', class: 'IN', ttl: LOCAL_TTL });
  });

  it('resolves aliases (compose service names) per network, the short id and the hostname', async () => {
    const { c, ask } = world();
    expect(data(await ask('web', 'api'))).toEqual([ipOn(c('app'), 'frontend')]);
    expect(data(await ask('db', 'svc'))).toEqual([ipOn(c('app'), 'backend')]);
    expect((await ask('web', 'svc')).rcode).toBe('NXDOMAIN'); // alias on backend only
    expect((await ask('db', 'api')).rcode).toBe('NXDOMAIN'); // alias on frontend only
    expect(data(await ask('app', shortId(c('web').id)))).toEqual([ipOn(c('web'), 'frontend')]);
    expect(data(await ask('app', 'webhost'))).toEqual([ipOn(c('web'), 'frontend')]);
  });

  it('matches names case-insensitively, with or without the trailing dot, keeping the asked spelling', async () => {
    const { c, ask } = world();
    const ip = ipOn(c('app'), 'frontend');
    for (const n of ['APP', 'App.', 'app.', 'aPi']) {
      const p = await ask('web', n);
      expect(data(p)).toEqual([ip]);
      expect(p.answers![0]!.name).toBe(n.replace(/\.$/, ''));
    }
  });

  it('resolves NAME.NETWORK on networks the asker is on', async () => {
    const { c, ask } = world();
    expect(data(await ask('web', 'app.frontend'))).toEqual([ipOn(c('app'), 'frontend')]);
    expect(data(await ask('db', 'APP.Backend.'))).toEqual([ipOn(c('app'), 'backend')]);
    expect(data(await ask('app', 'db.backend'))).toEqual([ipOn(c('db'), 'backend')]);
    expect((await ask('web', 'app.backend')).rcode).toBe('NXDOMAIN'); // web is not on backend
    expect((await ask('app', 'db.frontend')).rcode).toBe('NXDOMAIN'); // db is not on frontend
  });

  it('rotates several addresses round-robin, one step per query', async () => {
    const st = new State();
    st.createNetwork({ name: 'net' });
    for (const n of ['w1', 'w2', 'w3']) st.createContainer({ name: n, network: 'net', aliases: ['worker'] });
    st.createContainer({ name: 'client', network: 'net' });
    const table = new DnsTable();
    table.update(st.networks(), st.containers());
    const r = new DnsResolver(table, { upstreams: [] });
    const ips = ['w1', 'w2', 'w3'].map((n) => st.findContainer(n).endpoints[0]!.ip);
    const got: unknown[][] = [];
    for (let i = 0; i < 4; i++) got.push(data(decode((await r.handle(query('worker'), asker(st.findContainer('client')), 'udp'))!)));
    expect(got).toEqual([
      [ips[0], ips[1], ips[2]],
      [ips[1], ips[2], ips[0]],
      [ips[2], ips[0], ips[1]],
      [ips[0], ips[1], ips[2]],
    ]);
  });

  it('answers AAAA and other types for a known name with an empty NOERROR', async () => {
    const { ask } = world();
    for (const t of ['AAAA', 'MX', 'TXT'] as const) {
      const p = await ask('web', 'app', t);
      expect(p.rcode).toBe('NOERROR');
      expect(p.answers).toEqual([]);
    }
  });

  it('answers PTR with <container>.<network> for addresses on a shared network', async () => {
    const { c, ask } = world();
    const rev = (ip: string): string => `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
    const p = await ask('app', rev(ipOn(c('web'), 'frontend')), 'PTR');
    expect(p.answers).toEqual([{ name: rev(ipOn(c('web'), 'frontend')), type: 'PTR', class: 'IN', ttl: LOCAL_TTL, flush: false, data: 'web.frontend' }]);
    expect(data(await ask('db', rev(ipOn(c('app'), 'backend')).toUpperCase(), 'PTR'))).toEqual(['app.backend']);
    expect((await ask('db', rev(ipOn(c('web'), 'frontend')), 'PTR')).rcode).toBe('NXDOMAIN');
    expect(reverseIp('4.3.2.1.in-addr.arpa')).toBe('1.2.3.4');
    expect(reverseIp('4.3.2.256.in-addr.arpa')).toBeNull();
    expect(reverseIp('3.2.1.in-addr.arpa')).toBeNull();
  });

  it('has no names on the default bridge', async () => {
    const { st, table, ask } = world();
    expect(table.names(st.findNetwork('bridge').id)).toEqual([]);
    expect((await ask('solo', 'solo2')).rcode).toBe('NXDOMAIN');
    expect((await ask('solo', 'web')).rcode).toBe('NXDOMAIN');
  });

  it('follows update(): a removed container disappears, a connected one appears', async () => {
    const { st, table, c, ask } = world();
    st.removeContainer('db');
    st.connect('frontend', 'solo');
    table.update(st.networks(), st.containers());
    expect((await ask('app', 'db')).rcode).toBe('NXDOMAIN');
    expect(data(await ask('web', 'solo'))).toEqual([ipOn(c('solo'), 'frontend')]);
  });

  it('answers NXDOMAIN with RA when no upstream is configured, SERVFAIL to internal-only askers', async () => {
    const { resolver, c } = world();
    const nx = decode((await resolver.handle(query('example.com', 'A', 99), asker(c('web')), 'udp'))!);
    expect(nx).toMatchObject({ id: 99, rcode: 'NXDOMAIN', flag_ra: true, flag_rd: true, answers: [] });
    expect(nx.questions).toEqual([{ name: 'example.com', type: 'A', class: 'IN' }]);
    const sf = decode((await resolver.handle(query('example.com'), asker(c('web'), true), 'udp'))!);
    expect(sf.rcode).toBe('SERVFAIL');
    // local names still resolve for internal-only askers
    expect(decode((await resolver.handle(query('app'), asker(c('web'), true), 'udp'))!).rcode).toBe('NOERROR');
    expect(resolver.counters).toMatchObject({ nxdomain: 1, servfail: 1, notForwardedInternal: 1, answeredLocal: 1, forwarded: 0 });
  });

  it('truncates a big UDP answer (TC) and gives it whole over TCP or with a large EDNS size', async () => {
    const st = new State();
    st.createNetwork({ name: 'big' });
    for (let i = 0; i < 60; i++) st.createContainer({ name: `n${i}`, network: 'big', aliases: ['many-replicas-of-this-service'] });
    const table = new DnsTable();
    table.update(st.networks(), st.containers());
    const r = new DnsResolver(table, { upstreams: [] });
    const who = asker(st.findContainer('n0'));
    const udp = (await r.handle(query('many-replicas-of-this-service'), who, 'udp'))!;
    expect(udp.length).toBeLessThanOrEqual(512);
    const p = decode(udp);
    expect(p.flag_tc).toBe(true);
    expect(p.answers!.length).toBeGreaterThan(0);
    expect(p.answers!.length).toBeLessThan(60);
    const tcp = decode((await r.handle(query('many-replicas-of-this-service'), who, 'tcp'))!);
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers!.length).toBe(60);
    const edns = query('many-replicas-of-this-service', 'A', 8, {
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    });
    const e = decode((await r.handle(edns, who, 'udp'))!);
    expect(e.flag_tc).toBe(false);
    expect(e.answers!.length).toBe(60);
    expect(e.additionals!.map((a) => a.type)).toEqual(['OPT']);
    expect(r.counters.truncated).toBe(1);
  });
});

describe('DnsResolver: malformed queries', () => {
  const { resolver, c } = world();
  const who = (): DnsAsker => asker(c('web'));

  it('drops what is not a query header (short, or a response)', async () => {
    expect(await resolver.handle(Buffer.alloc(0), who(), 'udp')).toBeNull();
    expect(await resolver.handle(Buffer.from('hello'), who(), 'udp')).toBeNull();
    const resp = dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'app', type: 'A' }] });
    expect(await resolver.handle(resp, who(), 'udp')).toBeNull();
  });

  it('answers FORMERR to unparseable bodies and to zero or several questions', async () => {
    const cut = query('app').subarray(0, 16);
    const garbage = Buffer.concat([Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]), Buffer.from([0x3f, 0xff, 0xff])]);
    const none = dnsPacket.encode({ type: 'query', id: 5, questions: [] });
    const two = dnsPacket.encode({ type: 'query', id: 6, questions: [{ name: 'app', type: 'A' }, { name: 'web', type: 'A' }] });
    for (const [q, id] of [[cut, 7], [garbage, 0xabcd], [none, 5], [two, 6]] as const) {
      const reply = await resolver.handle(q, who(), 'udp');
      expect(reply).not.toBeNull();
      const p = decode(reply!);
      expect(p).toMatchObject({ id, type: 'response', rcode: 'FORMERR', questions: [], answers: [] });
    }
  });

  it('answers NOTIMP to opcodes other than QUERY', async () => {
    const q = query('app');
    q.writeUInt16BE(q.readUInt16BE(2) | (2 << 11), 2); // STATUS
    const p = decode((await resolver.handle(q, who(), 'udp'))!);
    expect(p.rcode).toBe('NOTIMP');
    expect(p.opcode).toBe('STATUS');
  });

  it('never throws on random input', async () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const base = query('app.frontend', 'A');
    for (let i = 0; i < 3000; i++) {
      const b = i % 2 === 0 ? Buffer.from(Array.from({ length: rnd() % 64 }, rnd)) : Buffer.from(base);
      if (i % 2 === 1) for (let k = 0; k < 3; k++) b[rnd() % b.length] = rnd();
      const reply = await resolver.handle(b, who(), i % 3 === 0 ? 'tcp' : 'udp');
      if (reply) expect(reply.length).toBeGreaterThanOrEqual(12);
    }
    expect(resolver.counters.queries).toBeGreaterThanOrEqual(3000);
    expect(resolver.counters.formerr + resolver.counters.dropped).toBeGreaterThan(0);
  });
});
