import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { type DnsAsker, DnsResolver, DnsTable } from './dns.js';
import { parseUpstream } from './dns-upstream.js';

/** dns-packet's decode, with the fields its type declarations leave out. */
type Reply = dnsPacket.DecodedPacket & { rcode: string; opcode: string };
const decode = (b: Buffer): Reply => dnsPacket.decode(b) as Reply;

type Mode = 'answer' | 'silent' | 'servfail' | 'truncate-udp' | 'spoof-first' | 'big';

/** A tiny DNS server on 127.0.0.1 (UDP and TCP on the same port): one name, NXDOMAIN with a SOA for the rest. */
interface Server {
  port: number;
  addr: string;
  udp: Reply[];
  tcp: Reply[];
  close(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function answerFor(q: Reply, name: string, ip: string, truncated = false, count = 1): Buffer {
  const qq = q.questions![0]!;
  const known = qq.name.toLowerCase() === name;
  const records: dnsPacket.Answer[] = Array.from({ length: count }, (_, i) => ({ name: qq.name, type: 'A', class: 'IN', ttl: 300, data: i === 0 ? ip : `198.51.100.${i}` }));
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_AVAILABLE | (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) | (known ? 0 : 3),
    questions: q.questions,
    answers: known && !truncated ? records : [],
    authorities: known ? [] : [{ name: 'example', type: 'SOA', ttl: 120, data: { mname: 'ns.example', rname: 'host.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } }],
  });
}

async function startServer(mode: Mode = 'answer', name = 'outside.example', ip = '203.0.113.7'): Promise<Server> {
  const udpSock = dgram.createSocket('udp4');
  await new Promise<void>((r) => udpSock.bind(0, '127.0.0.1', r));
  const port = udpSock.address().port;
  const s: Server = { port, addr: `127.0.0.1:${port}`, udp: [], tcp: [], close: async () => {} };
  udpSock.on('message', (msg, rinfo) => {
    const q = decode(msg);
    s.udp.push(q);
    const send = (b: Buffer): void => udpSock.send(b, rinfo.port, rinfo.address);
    if (mode === 'silent') return;
    if (mode === 'servfail') return send(dnsPacket.encode({ type: 'response', id: q.id, flags: 2, questions: q.questions }));
    if (mode === 'spoof-first') send(answerFor({ ...q, id: (q.id! + 1) & 0xffff }, name, '6.6.6.6'));
    send(answerFor(q, name, ip, mode === 'truncate-udp' || mode === 'big'));
  });
  const tcpServer = net.createServer((conn) => {
    let got = Buffer.alloc(0);
    conn.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
      const q = decode(got.subarray(2, 2 + got.readUInt16BE(0)));
      s.tcp.push(q);
      if (mode !== 'silent') conn.write(dnsPacket.streamEncode(decode(answerFor(q, name, ip, false, mode === 'big' ? 60 : 1))));
    });
    conn.on('error', () => {});
  });
  await new Promise<void>((r) => tcpServer.listen(port, '127.0.0.1', r));
  s.close = async () => {
    udpSock.close();
    await new Promise<void>((r) => tcpServer.close(() => r()));
  };
  servers.push(s);
  return s;
}

const CLIENT: DnsAsker = { networks: [], internalOnly: false };

function query(name: string, id = 0x1234, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
}

function resolver(upstreams: string[], extra: Partial<ConstructorParameters<typeof DnsResolver>[1]> = {}): DnsResolver {
  return new DnsResolver(new DnsTable(), { upstreams, timeoutMs: 300, ...extra });
}

async function ask(r: DnsResolver, name: string, opts: { id?: number; transport?: 'udp' | 'tcp'; asker?: DnsAsker } = {}) {
  const reply = await r.handle(query(name, opts.id), opts.asker ?? CLIENT, opts.transport ?? 'udp');
  expect(reply).not.toBeNull();
  return decode(reply!);
}

const ips = (p: Reply): unknown[] => (p.answers ?? []).map((a) => (a as { data: unknown }).data);

describe('parseUpstream', () => {
  it('takes IP, IP:PORT and [IPv6]:PORT', () => {
    expect(parseUpstream('10.0.0.1')).toEqual({ host: '10.0.0.1', port: 53 });
    expect(parseUpstream('10.0.0.1:5353')).toEqual({ host: '10.0.0.1', port: 5353 });
    expect(parseUpstream('::1')).toEqual({ host: '::1', port: 53 });
    expect(parseUpstream('[::1]:54')).toEqual({ host: '::1', port: 54 });
    for (const bad of ['dns.example', '10.0.0.1:0', '10.0.0.1:70000', '', '1.2.3']) expect(() => parseUpstream(bad)).toThrow(/invalid DNS server/);
  });
});

describe('DnsResolver: forwarding upstream', () => {
  it('forwards unknown names over UDP with a fresh id and relays the reply with the client id', async () => {
    const up = await startServer();
    const r = resolver([up.addr], { rng: () => 0.5 });
    const p = await ask(r, 'Outside.Example', { id: 0x1234 });
    expect(p).toMatchObject({ id: 0x1234, rcode: 'NOERROR' });
    expect(ips(p)).toEqual(['203.0.113.7']);
    expect(up.udp.map((q) => q.id)).toEqual([0x8000]);
    expect(up.udp[0]!.questions).toEqual([{ name: 'Outside.Example', type: 'A', class: 'IN' }]);
    expect(up.tcp).toEqual([]);
    const nx = await ask(r, 'nothing.example', { id: 77 });
    expect(nx).toMatchObject({ id: 77, rcode: 'NXDOMAIN' });
    expect(r.counters).toMatchObject({ forwarded: 2, nxdomain: 1, answeredLocal: 0 });
  });

  it('ignores replies with the wrong id', async () => {
    const up = await startServer('spoof-first');
    const p = await ask(resolver([up.addr]), 'outside.example');
    expect(ips(p)).toEqual(['203.0.113.7']);
  });

  it('fails over to the next upstream after a timeout or SERVFAIL, and SERVFAILs when all fail', async () => {
    const dead = await startServer('silent');
    const broken = await startServer('servfail');
    const good = await startServer();
    const r = resolver([dead.addr, broken.addr, good.addr], { timeoutMs: 150 });
    const t0 = Date.now();
    const p = await ask(r, 'outside.example');
    expect(ips(p)).toEqual(['203.0.113.7']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect([dead.udp.length, broken.udp.length, good.udp.length]).toEqual([1, 1, 1]);
    expect(r.counters).toMatchObject({ upstreamTimeouts: 1, upstreamErrors: 1 });

    const none = resolver([dead.addr, broken.addr], { timeoutMs: 100 });
    const f = await ask(none, 'outside.example', { id: 4 });
    expect(f).toMatchObject({ id: 4, rcode: 'SERVFAIL', flag_ra: true, answers: [] });
    expect(f.questions).toEqual([{ name: 'outside.example', type: 'A', class: 'IN' }]);
    expect(none.counters.servfail).toBe(1);
  });

  it('uses TCP upstream when the client asked over TCP', async () => {
    const up = await startServer();
    const p = await ask(resolver([up.addr]), 'outside.example', { transport: 'tcp', id: 9 });
    expect(p.id).toBe(9);
    expect(ips(p)).toEqual(['203.0.113.7']);
    expect([up.udp.length, up.tcp.length]).toEqual([0, 1]);
  });

  it('retries a truncated UDP reply over TCP', async () => {
    const up = await startServer('truncate-udp');
    const r = resolver([up.addr]);
    const p = await ask(r, 'outside.example');
    expect(p.flag_tc).toBe(false);
    expect(ips(p)).toEqual(['203.0.113.7']);
    expect([up.udp.length, up.tcp.length]).toEqual([1, 1]);
    expect(r.counters.tcpRetries).toBe(1);
  });

  it('gives a UDP client a reply too big for it as header + question with TC, and the whole over TCP', async () => {
    const up = await startServer('big');
    const r = resolver([up.addr]);
    const small = await ask(r, 'outside.example', { id: 11 });
    expect(small).toMatchObject({ id: 11, flag_tc: true, rcode: 'NOERROR', answers: [] });
    expect(small.questions).toEqual([{ name: 'outside.example', type: 'A', class: 'IN' }]);
    const whole = await ask(r, 'outside.example', { id: 12, transport: 'tcp' });
    expect(whole.id).toBe(12);
    expect(whole.answers!.length).toBe(60);
    expect([up.udp.length, up.tcp.length]).toEqual([1, 1]); // the TCP client was served from the cache
    expect(r.counters).toMatchObject({ tcpRetries: 1, cacheHits: 1, truncated: 1 });
  });

  it('caches replies for their TTL, lowering the TTL with age, in the asker’s letter case', async () => {
    const up = await startServer();
    let now = 1_000_000;
    const r = resolver([up.addr], { now: () => now });
    expect((await ask(r, 'outside.example', { id: 1 })).answers![0]!).toMatchObject({ ttl: 300 });
    now += 100_000;
    const hit = await ask(r, 'OUTSIDE.example', { id: 2 });
    expect(hit.id).toBe(2);
    expect(hit.questions![0]!.name).toBe('OUTSIDE.example');
    expect(hit.answers![0]!).toMatchObject({ ttl: 200, data: '203.0.113.7' }); // answer names stay as the upstream wrote them
    expect(up.udp.length).toBe(1);
    expect(r.counters.cacheHits).toBe(1);
    now += 200_000; // expired
    await ask(r, 'outside.example', { id: 3 });
    expect(up.udp.length).toBe(2);
    // negative answers: SOA min(TTL 120, MINIMUM 60)
    await ask(r, 'gone.example');
    now += 59_000;
    expect((await ask(r, 'gone.example')).rcode).toBe('NXDOMAIN');
    expect(up.udp.length).toBe(3);
    now += 2_000;
    await ask(r, 'gone.example');
    expect(up.udp.length).toBe(4);
  });

  it('bounds the cache and counts what it refuses', async () => {
    const up = await startServer();
    const r = resolver([up.addr], { cacheSize: 1 });
    await ask(r, 'outside.example');
    await ask(r, 'other.example');
    expect(r.counters.cacheFull).toBe(1);
    await ask(r, 'outside.example');
    await ask(r, 'other.example');
    expect(up.udp.length).toBe(3);
    expect(r.counters.cacheHits).toBe(1);
    const off = resolver([up.addr], { cacheSize: 0 });
    await ask(off, 'outside.example');
    await ask(off, 'outside.example');
    expect(off.counters.cacheHits).toBe(0);
  });

  it('never forwards for an asker on internal networks only (SERVFAIL), not even from the cache', async () => {
    const up = await startServer();
    const r = resolver([up.addr]);
    const internal: DnsAsker = { networks: ['n1'], internalOnly: true };
    expect((await ask(r, 'outside.example', { asker: internal })).rcode).toBe('SERVFAIL');
    expect((await ask(r, 'outside.example', { asker: internal, transport: 'tcp' })).rcode).toBe('SERVFAIL');
    await new Promise((res) => setTimeout(res, 50));
    expect([up.udp.length, up.tcp.length]).toEqual([0, 0]);
    await ask(r, 'outside.example'); // fills the cache
    expect((await ask(r, 'outside.example', { asker: internal })).rcode).toBe('SERVFAIL');
    expect(up.udp.length).toBe(1);
    expect(r.counters.notForwardedInternal).toBe(3);
  });

  it('bounds concurrent forwards', async () => {
    const dead = await startServer('silent');
    const r = resolver([dead.addr], { timeoutMs: 100, maxInflight: 1 });
    const [a, b] = await Promise.all([ask(r, 'outside.example'), ask(r, 'outside.example', { id: 5 })]);
    expect([a.rcode, b.rcode]).toEqual(['SERVFAIL', 'SERVFAIL']);
    expect(r.counters.inflightFull).toBe(1);
    expect(dead.udp.length).toBe(1);
  });

  it('gives each network a share of the forwards in flight: a flood from one leaves room for the others', async () => {
    const dead = await startServer('silent');
    const good = await startServer('answer');
    const r = resolver([dead.addr, good.addr], { timeoutMs: 150, maxInflight: 8 });
    const flooder: DnsAsker = { networks: ['net-a'], internalOnly: false };
    const other: DnsAsker = { networks: ['net-b'], internalOnly: false };
    // net-a asks 20 names at once (each waits on the dead upstream first): only its share (2 of 8) goes out
    const flood = Promise.all(Array.from({ length: 20 }, (_, i) => ask(r, `n${i}.example`, { id: i, asker: flooder })));
    const mine = await ask(r, 'outside.example', { id: 99, asker: other });
    expect(mine.rcode).toBe('NOERROR');
    expect(ips(mine)).toEqual(['203.0.113.7']);
    const answers = await flood;
    expect(answers.filter((a) => a.rcode === 'SERVFAIL').length).toBeGreaterThanOrEqual(18);
    expect(r.counters.tenantInflightFull).toBe(18);
    expect(r.counters.inflightFull).toBe(0);
  });
});
