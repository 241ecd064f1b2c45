// ContainerDns and the addon's openSocketIn, with real clients: a namespace
// made here plays the container "web"; dig, getent and a small Node TCP client
// run inside it (`ip netns exec`) and talk to 127.0.0.11, whose sockets this
// process opened there. The upstream resolver is a dns-packet server in this
// process on 127.0.0.1: the forwarder's sockets live in the daemon's (here:
// the test's) namespace, not the container's, so that is where it must be.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { State } from '../control/model.js';
import { loadNative } from '../io/native.js';
import { type DnsAsker, DnsResolver, DnsTable } from './dns.js';
import { ContainerDns, NETNS_ETC, removeResolvConf, writeResolvConf } from './dns-server.js';
import { ip, waitFor, nsRunner } from '../lab/ns-kit.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn(
    '\n*** SKIPPED: needs root: src/services/dns-server.test.ts (embedded DNS on 127.0.0.11 inside a namespace: dig ' +
      'UDP/TCP, getent via resolv.conf, PTR, NXDOMAIN, upstream forwarding, TCP pipelining/idle/limits, ' +
      'openSocketIn in a namespace) did not run ***\n',
  );
}

const native = loadNative();
const prefix = `und${process.pid % 10000}${Math.random().toString(36).slice(2, 4)}`;
const NS = `${prefix}c`;
const namespaces = new Set<string>();
const children: Array<ReturnType<typeof spawn>> = [];
const nsRun = nsRunner(children, 20_000);
const servers: ContainerDns[] = [];
const cleanups: Array<() => void | Promise<void>> = [];



/** Listening sockets in a namespace (`ss -Hln`), one "proto addr:port" a line. */
async function listening(ns: string): Promise<string[]> {
  const r = await nsRun(ns, ['ss', '-Hlntu']);
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return `${f[0]} ${f[4]}`;
    });
}

const dig = (...args: string[]) => nsRun(NS, ['dig', '+time=2', '+tries=1', ...args]);


// A DNS-over-TCP client run inside the namespace. Argument: JSON
// { host, port, queries: hex[], bytewise, fin, hold }. Prints one JSON event a
// line: {ev:'connect'}, {ev:'reply',hex}, {ev:'close',ms}, {ev:'error',code}.
// Sends every query framed in one go (or one byte per write with `bytewise`),
// then half-closes with `fin`; exits on close, or after all replies unless
// `hold` (then it waits for the server to close).
const TCP_CLIENT = `
const net = require('net');
const cfg = JSON.parse(process.argv[1]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const t0 = Date.now();
const s = net.connect({ host: cfg.host, port: cfg.port, noDelay: true });
let buf = Buffer.alloc(0), got = 0;
s.on('connect', async () => {
  out({ ev: 'connect' });
  const frames = Buffer.concat(cfg.queries.map((h) => { const q = Buffer.from(h, 'hex'); const l = Buffer.alloc(2); l.writeUInt16BE(q.length); return Buffer.concat([l, q]); }));
  if (cfg.bytewise) { for (const b of frames) { s.write(Buffer.from([b])); await new Promise((r) => setTimeout(r, 2)); } }
  else s.write(frames);
  if (cfg.fin) s.end();
});
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
    const n = buf.readUInt16BE(0);
    out({ ev: 'reply', hex: buf.subarray(2, 2 + n).toString('hex') });
    buf = buf.subarray(2 + n);
    got++;
  }
  if (got === cfg.queries.length && !cfg.hold && !cfg.fin) s.destroy();
});
s.on('error', (e) => out({ ev: 'error', code: e.code }));
s.on('close', () => { out({ ev: 'close', ms: Date.now() - t0 }); process.exit(0); });
`;

interface ClientEvent {
  ev: 'connect' | 'reply' | 'close' | 'error';
  hex?: string;
  ms?: number;
  code?: string;
}

function tcpClient(cfg: { host?: string; port?: number; queries: Buffer[]; bytewise?: boolean; fin?: boolean; hold?: boolean }) {
  const arg = JSON.stringify({ host: cfg.host ?? '127.0.0.11', port: cfg.port ?? 53, queries: cfg.queries.map((q) => q.toString('hex')), bytewise: !!cfg.bytewise, fin: !!cfg.fin, hold: !!cfg.hold });
  const p = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', TCP_CLIENT, arg]);
  children.push(p);
  const events: ClientEvent[] = [];
  let partial = '';
  let errText = '';
  p.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (l) events.push(JSON.parse(l) as ClientEvent);
  });
  p.stderr.on('data', (d: Buffer) => (errText += d.toString()));
  const exited = new Promise<void>((resolve) => p.on('exit', () => resolve()));
  return { events, exited, stderr: () => errText, kill: () => p.kill('SIGKILL') };
}

type Reply = dnsPacket.DecodedPacket & { rcode: string };
const decodeHex = (hex: string): Reply => dnsPacket.decode(Buffer.from(hex, 'hex')) as Reply;
const query = (name: string, id: number, type: dnsPacket.RecordType = 'A'): Buffer =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });

/** web, app (alias api) and pool1/pool2 (alias pool) on frontend; app (alias svc) and db on backend. The namespace is web. */
function world() {
  const st = new State();
  st.createNetwork({ name: 'frontend' });
  st.createNetwork({ name: 'backend' });
  st.createContainer({ name: 'web', network: 'frontend', aliases: ['www'] });
  st.createContainer({ name: 'app', network: 'frontend', aliases: ['api'] });
  st.connect('backend', 'app', { aliases: ['svc'] });
  st.createContainer({ name: 'db', network: 'backend' });
  st.createContainer({ name: 'pool1', network: 'frontend', aliases: ['pool'] });
  st.createContainer({ name: 'pool2', network: 'frontend', aliases: ['pool'] });
  const table = new DnsTable();
  table.update(st.networks(), st.containers());
  const ipOf = (c: string, n = 'frontend'): string => st.findContainer(c).endpoints.find((e) => e.network === n)!.ip;
  const web = st.findContainer('web');
  const asker = (): DnsAsker => ({ networks: web.endpoints.map((e) => e.networkId), internalOnly: false });
  return { st, table, ipOf, asker };
}

async function startDns(resolver: DnsResolver, asker: () => DnsAsker, opts: ConstructorParameters<typeof ContainerDns>[3] = {}, at?: { ip?: string; port?: number }) {
  const dns = new ContainerDns(resolver, asker, undefined, opts);
  servers.push(dns);
  await dns.start(NS, at);
  return dns;
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

const hadNetnsEtc = existsSync(NETNS_ETC);

beforeAll(() => {
  if (!isRoot) return;
  ip('netns', 'add', NS);
  namespaces.add(NS);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
});

afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  for (const f of cleanups) await Promise.resolve(f()).catch(() => undefined);
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
  for (const ns of namespaces) {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    await removeResolvConf(ns).catch(() => undefined);
    rmSync(`${NETNS_ETC}/${ns}`, { recursive: true, force: true });
  }
  // /etc/netns itself, when this test made it and left it empty
  if (isRoot && !hadNetnsEtc && existsSync(NETNS_ETC) && readdirSync(NETNS_ETC).length === 0) rmSync(NETNS_ETC, { recursive: true });
});

describe('openSocketIn / ContainerDns (no root needed)', () => {
  it('rejects bad arguments before touching anything', () => {
    expect(() => native.openSocketIn('x', 'sctp' as 'udp', '127.0.0.11', 53)).toThrow(TypeError);
    expect(() => native.openSocketIn('x', 'udp', '127.0.0', 53)).toThrow(/IPv4 address/);
    expect(() => native.openSocketIn('x', 'udp', '::1', 53)).toThrow(/IPv4 address/);
    expect(() => native.openSocketIn('x', 'udp', '127.0.0.11', 65536)).toThrow(RangeError);
    expect(() => native.openSocketIn('x', 'udp', '127.0.0.11', 1.5)).toThrow(RangeError);
    expect(() => native.openSocketIn('', 'udp', '127.0.0.11', 53)).toThrow(RangeError);
    expect(() => native.openSocketIn('..', 'udp', '127.0.0.11', 53)).toThrow(RangeError);
  });

  it('a namespace that does not exist: ENOENT naming it, and start() leaves no fd behind', async () => {
    let err: NodeJS.ErrnoException | undefined;
    try {
      native.openSocketIn(`${prefix}-nosuch`, 'udp', '127.0.0.11', 53);
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.code).toBe('ENOENT');
    expect(err?.syscall).toBe(`open netns '/run/netns/${prefix}-nosuch'`);
    const before = fdCount();
    const dns = new ContainerDns(new DnsResolver(new DnsTable(), { upstreams: [] }), () => ({ networks: [], internalOnly: false }));
    await expect(dns.start(`${prefix}-nosuch`)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(dns.running).toBe(false);
    expect(fdCount()).toBeLessThanOrEqual(before);
    await dns.stop();
  });

  it('writeResolvConf refuses names that are not a plain namespace name', async () => {
    await expect(writeResolvConf('../etc', ['nameserver 127.0.0.11'])).rejects.toThrow(/invalid network namespace name/);
    await expect(writeResolvConf('', ['nameserver 127.0.0.11'])).rejects.toThrow(/invalid/);
    await expect(removeResolvConf('a/b')).rejects.toThrow(/invalid/);
  });
});

describe.skipIf(!isRoot)('openSocketIn in a namespace (root)', () => {
  it('makes UDP and TCP sockets in the namespace (not here) that Node adopts', async () => {
    const port = 5301;
    const ufd = native.openSocketIn(NS, 'udp', '127.0.0.11', port);
    const tfd = native.openSocketIn(NS, 'tcp', '127.0.0.11', port);
    const u = dgram.createSocket('udp4');
    const srv = net.createServer((c) => c.end('hello\n'));
    try {
      u.bind({ fd: ufd });
      u.on('message', (m, r) => u.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen({ fd: tfd, backlog: 128 }, resolve);
      });
      expect(u.address()).toMatchObject({ address: '127.0.0.11', port });
      expect(srv.address()).toMatchObject({ address: '127.0.0.11', port });
      const inside = await listening(NS);
      expect(inside).toContain(`udp 127.0.0.11:${port}`);
      expect(inside).toContain(`tcp 127.0.0.11:${port}`);
      expect(execFileSync('ss', ['-Hlntu']).toString()).not.toContain(`127.0.0.11:${port}`);
      // traffic from inside, through Node's handles
      const tcp = await nsRun(NS, [process.execPath, '-e', `require('net').connect(${port}, '127.0.0.11').on('data', (d) => process.stdout.write(d))`]);
      expect(tcp.out).toBe('hello\n');
      const udp = await nsRun(NS, [
        process.execPath,
        '-e',
        `const s = require('dgram').createSocket('udp4'); s.on('message', (m) => { process.stdout.write(m); s.close(); }); s.send('ping', ${port}, '127.0.0.11')`,
      ]);
      expect(udp.out).toBe('echo:ping');
      // errno-shaped errors
      let err: NodeJS.ErrnoException & { address?: string; port?: number } = new Error();
      try {
        native.openSocketIn(NS, 'tcp', '127.0.0.11', port);
      } catch (e) {
        err = e as typeof err;
      }
      expect(err).toMatchObject({ code: 'EADDRINUSE', address: '127.0.0.11', port, syscall: `bind tcp 127.0.0.11:${port} in '/run/netns/${NS}'` });
      expect(() => native.openSocketIn(NS, 'udp', '10.123.0.1', port)).toThrow(/EADDRNOTAVAIL/);
      // a /run/netns path works as well as a name
      const fd2 = native.openSocketIn(`/run/netns/${NS}`, 'udp', '127.0.0.12', 0);
      native.close(fd2);
    } finally {
      u.close();
      srv.close();
    }
    await waitFor(() => false, 50);
    expect(await listening(NS)).not.toContain(`tcp 127.0.0.11:${port}`);
  });
});

describe.skipIf(!isRoot)('ContainerDns on 127.0.0.11 in a namespace (root)', () => {
  it('answers dig over UDP and TCP, getent via resolv.conf, PTR, round robin; unknown names NXDOMAIN without upstream', async () => {
    const w = world();
    const resolver = new DnsResolver(w.table, { upstreams: [] });
    const dns = await startDns(resolver, w.asker);
    expect(dns.address).toEqual({ ip: '127.0.0.11', port: 53 });
    const inside = await listening(NS);
    expect(inside).toContain('udp 127.0.0.11:53');
    expect(inside).toContain('tcp 127.0.0.11:53');

    let r = await dig('+short', '@127.0.0.11', 'app');
    expect(r.out.trim()).toBe(w.ipOf('app'));
    r = await dig('+short', '+tcp', '@127.0.0.11', 'api');
    expect(r.out.trim()).toBe(w.ipOf('app'));
    r = await dig('+short', '@127.0.0.11', 'APP.frontend');
    expect(r.out.trim()).toBe(w.ipOf('app'));

    // PTR: <container>.<network>
    r = await dig('+short', '@127.0.0.11', '-x', w.ipOf('app'));
    expect(r.out.trim()).toBe('app.frontend.');

    // db is on backend only: not visible from web; no upstream → NXDOMAIN
    r = await dig('@127.0.0.11', 'db');
    expect(r.out).toMatch(/status: NXDOMAIN/);
    r = await dig('+tcp', '@127.0.0.11', 'nosuch.example.com');
    expect(r.out).toMatch(/status: NXDOMAIN/);

    // AAAA of a known name: NOERROR, no answer
    r = await dig('@127.0.0.11', 'app', 'AAAA');
    expect(r.out).toMatch(/status: NOERROR/);
    expect(r.out).toMatch(/ANSWER: 0/);

    // round robin: both addresses, the first one rotating
    const a = (await dig('+short', '@127.0.0.11', 'pool')).out.trim().split('\n');
    const b = (await dig('+short', '@127.0.0.11', 'pool')).out.trim().split('\n');
    expect([...a].sort()).toEqual([w.ipOf('pool1'), w.ipOf('pool2')].sort());
    expect(b).toEqual([a[1], a[0]]);

    // the C library's resolver, through /etc/netns/NS/resolv.conf
    await writeResolvConf(NS, ['nameserver 127.0.0.11', 'options ndots:0']);
    expect(readFileSync(`${NETNS_ETC}/${NS}/resolv.conf`, 'utf8')).toBe('nameserver 127.0.0.11\noptions ndots:0\n');
    const g = await nsRun(NS, ['getent', 'hosts', 'www']);
    expect(g.out.trim().split(/\s+/)).toEqual([w.ipOf('web'), 'www']);
    const g2 = await nsRun(NS, ['getent', 'hosts', 'db']);
    expect(g2.code).toBe(2); // not found
    await removeResolvConf(NS);
    expect(existsSync(`${NETNS_ETC}/${NS}`)).toBe(false);
    await removeResolvConf(NS); // twice is fine

    expect(dns.stats.udpQueries).toBeGreaterThanOrEqual(8);
    expect(dns.stats.tcpQueries).toBe(2);
    await dns.stop();
    expect(dns.running).toBe(false);
    const after = await listening(NS);
    expect(after.filter((l) => l.includes('127.0.0.11:53'))).toEqual([]);
    await dns.stop(); // idempotent
  });

  it('TCP: several pipelined queries on one connection, split into single bytes, half-close still gets every reply', async () => {
    const w = world();
    const dns = await startDns(new DnsResolver(w.table, { upstreams: [] }), w.asker);
    try {
      const qs = [query('app', 1), query('www', 2), query('db', 3), query('svc', 4)];
      const c = tcpClient({ queries: qs });
      await c.exited;
      const replies = c.events.filter((e) => e.ev === 'reply').map((e) => decodeHex(e.hex!));
      expect(replies.map((p) => p.id).sort()).toEqual([1, 2, 3, 4]);
      const byId = new Map(replies.map((p) => [p.id, p]));
      expect((byId.get(1)!.answers![0] as { data: string }).data).toBe(w.ipOf('app'));
      expect((byId.get(2)!.answers![0] as { data: string }).data).toBe(w.ipOf('web'));
      expect(byId.get(3)!.rcode).toBe('NXDOMAIN');
      expect(byId.get(4)!.rcode).toBe('NXDOMAIN'); // svc is app's alias on backend only

      const slow = tcpClient({ queries: [query('app', 5), query('pool', 6)], bytewise: true, fin: true });
      await slow.exited;
      expect(slow.events.filter((e) => e.ev === 'reply').map((e) => decodeHex(e.hex!).id).sort()).toEqual([5, 6]);
      expect(slow.events.at(-1)?.ev).toBe('close'); // our FIN after the last reply
      expect(dns.stats.tcpConnections).toBe(2);
    } finally {
      await dns.stop();
    }
  });

  it('TCP: idle connections are closed, connections are bounded, stop() closes the open ones', async () => {
    const w = world();
    const dns = await startDns(new DnsResolver(w.table, { upstreams: [] }), w.asker, { tcpIdleMs: 300, maxTcpConnections: 1 });
    let holder: ReturnType<typeof tcpClient> | undefined;
    try {
      const idle = tcpClient({ queries: [query('app', 1)], hold: true });
      await idle.exited;
      const close = idle.events.find((e) => e.ev === 'close');
      expect(idle.events.filter((e) => e.ev === 'reply')).toHaveLength(1);
      expect(close?.ms).toBeGreaterThanOrEqual(250);
      expect(close?.ms).toBeLessThan(5000);
      expect(dns.stats.tcpIdleClosed).toBe(1);

      // one connection held open (queries keep it busy), a second one is turned away
      const dns2Idle = 60_000;
      await dns.stop();
      const dns2 = await startDns(new DnsResolver(w.table, { upstreams: [] }), w.asker, { tcpIdleMs: dns2Idle, maxTcpConnections: 1 });
      holder = tcpClient({ queries: [query('app', 1)], hold: true });
      expect(await waitFor(() => holder!.events.some((e) => e.ev === 'reply'), 10_000)).toBe(true);
      const second = tcpClient({ queries: [query('app', 2)], hold: true });
      await second.exited;
      expect(second.events.some((e) => e.ev === 'reply')).toBe(false);
      expect(dns2.stats.tcpRejected).toBe(1);

      // stop() closes the held connection
      await dns2.stop();
      expect(await waitFor(() => holder!.events.some((e) => e.ev === 'close'), 5000)).toBe(true);
      const held = holder.events.find((e) => e.ev === 'close')!;
      expect(held.ms).toBeLessThan(dns2Idle);
    } finally {
      holder?.kill();
      await dns.stop();
    }
  });

  it('listens on another address and port when asked; a second start, or an address not there, rejects and leaves nothing open', async () => {
    const w = world();
    const dns = await startDns(new DnsResolver(w.table, { upstreams: [] }), w.asker, {}, { ip: '127.0.0.53', port: 5353 });
    try {
      expect(dns.address).toEqual({ ip: '127.0.0.53', port: 5353 });
      const r = await dig('+short', '-p', '5353', '@127.0.0.53', 'app');
      expect(r.out.trim()).toBe(w.ipOf('app'));
      const t = await dig('+short', '+tcp', '-p', '5353', '@127.0.0.53', 'app');
      expect(t.out.trim()).toBe(w.ipOf('app'));
      await expect(dns.start(NS)).rejects.toThrow(/already running \(127\.0\.0\.53:5353 in /);
      expect(dns.running).toBe(true);

      // port 0: the kernel's pick, the same for TCP
      const any = await startDns(new DnsResolver(w.table, { upstreams: [] }), w.asker, {}, { ip: '127.0.0.54', port: 0 });
      const port = any.address!.port;
      expect(port).toBeGreaterThan(0);
      expect((await dig('+short', '+tcp', '-p', String(port), '@127.0.0.54', 'app')).out.trim()).toBe(w.ipOf('app'));
      await any.stop();

      const before = fdCount();
      const other = new ContainerDns(new DnsResolver(w.table, { upstreams: [] }), w.asker);
      await expect(other.start(NS, { ip: '10.123.0.1' })).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
      // UDP opened, TCP in use: the UDP socket must be closed again
      const busy = net.createServer();
      const tfd = native.openSocketIn(NS, 'tcp', '127.0.0.55', 5354);
      await new Promise<void>((resolve) => busy.listen({ fd: tfd }, resolve));
      await expect(other.start(NS, { ip: '127.0.0.55', port: 5354 })).rejects.toMatchObject({ code: 'EADDRINUSE' });
      await new Promise((resolve) => busy.close(resolve));
      await waitFor(() => fdCount() <= before, 2000);
      expect(fdCount()).toBeLessThanOrEqual(before);
      expect((await listening(NS)).filter((l) => l.includes('127.0.0.55'))).toEqual([]);
      expect(other.running).toBe(false);
    } finally {
      await dns.stop();
    }
  });

  it('forwards other names upstream (from the daemon side) over UDP and TCP; internal-only askers get SERVFAIL', async () => {
    const w = world();
    // upstream: example.test → 192.0.2.7, anything else NXDOMAIN; UDP and TCP on one port of 127.0.0.1 here
    const answer = (q: Buffer): Buffer => {
      const p = dnsPacket.decode(q);
      const name = p.questions![0]!.name;
      const hit = name.toLowerCase() === 'example.test' && p.questions![0]!.type === 'A';
      return dnsPacket.encode({
        type: 'response',
        id: p.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (hit ? 0 : 3),
        questions: p.questions,
        answers: hit ? [{ name, type: 'A', class: 'IN', ttl: 60, data: '192.0.2.7' }] : [],
      });
    };
    const seen: string[] = [];
    // TCP: names starting with "slow" are answered after 150 ms; the most at once is recorded
    let busy = 0;
    let maxBusy = 0;
    const tcpUp = net.createServer((c) => {
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const q = Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + q.length);
          seen.push('tcp');
          const r = answer(q);
          const l = Buffer.alloc(2);
          l.writeUInt16BE(r.length);
          const slow = dnsPacket.decode(q).questions![0]!.name.startsWith('slow');
          busy++;
          maxBusy = Math.max(maxBusy, busy);
          setTimeout(() => {
            busy--;
            c.write(Buffer.concat([l, r]));
          }, slow ? 150 : 0);
        }
      });
    });
    await new Promise<void>((resolve) => tcpUp.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => void tcpUp.close());
    const port = (tcpUp.address() as net.AddressInfo).port;
    const udpUp = dgram.createSocket('udp4');
    cleanups.push(() => void udpUp.close());
    udpUp.on('message', (m, r) => {
      seen.push('udp');
      udpUp.send(answer(m), r.port, r.address);
    });
    await new Promise<void>((resolve) => udpUp.bind(port, '127.0.0.1', resolve));

    const resolver = new DnsResolver(w.table, { upstreams: [`127.0.0.1:${port}`], cacheSize: 0 });
    let internal = false;
    const dns = await startDns(resolver, () => ({ ...w.asker(), internalOnly: internal }));
    try {
      expect((await dig('+short', '@127.0.0.11', 'example.test')).out.trim()).toBe('192.0.2.7');
      expect((await dig('+short', '+tcp', '@127.0.0.11', 'EXAMPLE.test')).out.trim()).toBe('192.0.2.7');
      expect((await dig('@127.0.0.11', 'other.test')).out).toMatch(/status: NXDOMAIN/);
      expect(seen).toEqual(['udp', 'tcp', 'udp']);
      expect((await dig('+short', '@127.0.0.11', 'app')).out.trim()).toBe(w.ipOf('app')); // local names never go upstream
      expect(seen).toHaveLength(3);
      internal = true; // the asker function is consulted per query
      expect((await dig('@127.0.0.11', 'example.test')).out).toMatch(/status: SERVFAIL/);
      expect(seen).toHaveLength(3);
      expect(resolver.counters.forwarded).toBe(3);
    } finally {
      await dns.stop();
    }

    // TCP with answers still being resolved when the client half-closes, and
    // at most maxTcpInflight of one connection's queries resolved at once
    seen.length = 0;
    const bounded = await startDns(resolver, w.asker, { maxTcpInflight: 2 });
    try {
      const c = tcpClient({ queries: [1, 2, 3, 4, 5].map((i) => query(`slow${i}.test`, i)), fin: true });
      await c.exited;
      expect(c.stderr()).toBe('');
      const replies = c.events.filter((e) => e.ev === 'reply').map((e) => decodeHex(e.hex!));
      expect(replies.map((p) => p.id).sort()).toEqual([1, 2, 3, 4, 5]);
      expect(replies.every((p) => p.rcode === 'NXDOMAIN')).toBe(true);
      expect(c.events.at(-1)?.ev).toBe('close');
      expect(c.events.at(-1)!.ms).toBeGreaterThanOrEqual(3 * 150 - 50); // three rounds of two
      expect(seen).toEqual(['tcp', 'tcp', 'tcp', 'tcp', 'tcp']);
      expect(maxBusy).toBe(2);
    } finally {
      await bounded.stop();
    }
  });
});
