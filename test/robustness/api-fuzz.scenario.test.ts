/**
 * The daemon's API under bad input: a real daemon in a namespace of its own,
 * two containers that ping each other, then every request the robustness
 * issue lists (sent as raw bytes on the unix socket, so bad targets reach
 * the daemon unmodified), a 100 MB body, 10,000-character names, a wrong
 * JSON type for every field of every endpoint, clients that hang up, and a
 * bounded fast-check run of random and malformed requests. Afterwards the
 * daemon is the same process, answers, never said 500, the state file is
 * unchanged but for requests it accepted, and the containers still have
 * their interfaces and still ping each other. Needs root.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonUnderTest, listNetns, requireRoot, ROOT } from '../harness.js';
import { planCompose } from '../../src/control/compose.js';
import { type Answer, parseAnswer, RawClient } from './raw-http.js';
import { apiRequests, contentTypes } from './api-arbitraries.js';

const root = requireRoot('API robustness scenario (daemon, namespaces, ping)');

describe.runIf(root)('the API survives bad requests', () => {
  const d = new DaemonUnderTest('fz');
  const stateFile = () => join(d.stateDir, 'state.json');
  let daemonPid = 0;

  const http = new RawClient(d.socket);
  const request = (method: string, target: string, body?: unknown, contentType: string | null = 'application/json') => http.request(method, target, body, contentType);
  const answers = http.answers;

  const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemonPid}/status`, 'utf8'))![1]);
  const linksOf = (ctr: string) => d.exec(ctr, 'ip', '-o', 'link', 'show').stdout;
  let ipB = '';

  beforeAll(async () => {
    await d.start();
    d.ok('network', 'create', '--subnet', '10.213.7.0/24', 'lan');
    d.ok('run', '--name', 'aa', '--network', 'lan');
    d.ok('run', '--name', 'bb', '--network', 'lan', '--alias', 'bee');
    ipB = JSON.parse(d.ok('inspect', 'bb'))[0].NetworkSettings.Networks.lan.IPAddress;
    daemonPid = JSON.parse((await request('GET', '/info')).body).pid;
    expect(d.ping('aa', ipB)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await d.cleanup();
    expect(listNetns().filter((n) => n.startsWith(d.prefix))).toEqual([]);
  }, 60_000);

  it('answers 400 to the request targets that used to kill it, and changes nothing', async () => {
    const before = readFileSync(stateFile(), 'utf8');
    for (const [method, target] of [
      ['GET', '/networks/%E0%A4%A'],
      ['DELETE', '/containers/%'],
      ['GET', '/capture/%zz'],
      ['GET', '//%zz/networks'],
      ['GET', 'http://[zz/networks'],
      ['POST', '/networks/%E0%A4%A/connect'],
      ['DELETE', '/networks/%ff%fe'],
    ]) {
      const a = await request(method, target);
      expect(a.status, `${method} ${target}`).toBe(400);
      expect(a.message).toMatch(/^invalid request target /);
    }
    // a decoded control character never breaks the one-line message
    expect(await request('GET', '/networks/q%0Ab')).toMatchObject({ status: 404, message: 'network q\\nb not found' });
    expect((await request('GET', '/info')).status).toBe(200);
    expect(readFileSync(stateFile(), 'utf8')).toBe(before);
    expect(linksOf('aa')).toMatch(/eth0/);
  });

  it('refuses a 100 MB body with 413 without reading it (declared and streamed), and stays small', async () => {
    const rss0 = rssKb();
    const before = readFileSync(stateFile(), 'utf8');
    // stream a body: with a content-length of 100 MB, then chunked with no length; stop when the answer comes
    for (const chunked of [false, true]) {
      const total = 100 * 1024 * 1024;
      const head = chunked
        ? 'POST /networks HTTP/1.1\r\nHost: usernet\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
        : `POST /networks HTTP/1.1\r\nHost: usernet\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`;
      const result = await new Promise<{ answer: Answer | null; sent: number }>((resolve) => {
        const s = net.connect(d.socket);
        let got = Buffer.alloc(0);
        let sent = 0;
        let finished = false;
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const frame = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
        const finish = () => {
          if (finished) return;
          finished = true;
          s.destroy();
          resolve({ answer: parseAnswer(got), sent });
        };
        const pump = () => {
          while (!finished && sent < total) {
            sent += chunk.length;
            if (!s.write(frame)) return void s.once('drain', pump);
          }
        };
        s.on('data', (c) => {
          got = Buffer.concat([got, c]);
          if (parseAnswer(got)) finish();
        });
        s.on('error', finish);
        s.on('close', finish);
        const prefix = '{"name":"big","labels":{"a":"';
        s.write(head + (chunked ? `${prefix.length.toString(16)}\r\n${prefix}\r\n` : prefix));
        pump();
        setTimeout(finish, 20_000);
      });
      expect(result.answer?.status, chunked ? 'chunked' : 'content-length').toBe(413);
      expect(result.answer?.message).toMatch(/^request body too large/);
      answers.push({ what: `100 MB body (chunked: ${chunked})`, status: result.answer!.status, body: result.answer!.body });
      // the daemon stopped reading at the limit: far less than the body went out
      expect(result.sent).toBeLessThan(16 * 1024 * 1024);
    }
    expect(rssKb() - rss0).toBeLessThan(64 * 1024);
    expect(readFileSync(stateFile(), 'utf8')).toBe(before);
    expect((await request('GET', '/info')).status).toBe(200);
  }, 60_000);

  it('refuses 10,000-character names and values, and a wrong JSON type for every field of every endpoint', async () => {
    const before = readFileSync(stateFile(), 'utf8');
    const long = 'n'.repeat(10_000);
    expect((await request('POST', '/networks', { name: long })).message).toBe('invalid request: name: longer than 64 characters');
    expect((await request('POST', '/containers', { name: long, network: 'lan' })).message).toBe('invalid request: name: longer than 64 characters');
    expect((await request('POST', '/networks', { name: 'q1', labels: { a: long } })).message).toBe('invalid request: labels.a: longer than 4096 characters');
    expect((await request('POST', '/networks/lan/connect', { container: 'aa', aliases: [long] })).message).toBe('invalid request: aliases[0]: longer than 253 characters');
    // just under the size limit: deep nesting, and a record with 60,000 entries
    expect((await request('POST', '/networks', '['.repeat(500_000) + ']'.repeat(500_000))).message).toBe('invalid request: expected object, received array');
    const wide = Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`k${i}`, '']));
    expect((await request('POST', '/networks', { name: 'q1', labels: wide })).message).toBe('invalid request: labels: more than 128 entries');
    // the cases from the issue
    expect((await request('POST', '/containers', { name: 'q1', network: 7 })).message).toBe('invalid request: network: expected string, received number');
    expect((await request('POST', '/containers', { name: 'q1', publish: { a: 1 } })).message).toBe('invalid request: publish: expected array, received object');
    expect((await request('POST', '/networks/lan/connect', { container: 'bb', aliases: 'abc' })).message).toBe('invalid request: aliases: expected array, received string');
    expect((await request('POST', '/networks/lan/connect', { container: 5 })).message).toBe('invalid request: container: expected string, received number');

    const plan = JSON.parse(JSON.stringify(planCompose(readFileSync(join(ROOT, 'test/fixtures/compose/frontend-backend.yml'), 'utf8'), 'f.yml', 'qproj')));
    const endpoints: { target: string; base: Record<string, unknown>; nullable: string[] }[] = [
      { target: '/networks', base: { name: 'q1', driver: 'bridge', subnet: '10.213.9.0/24', gateway: '10.213.9.1', ipRange: '10.213.9.0/25', internal: false, attachable: false, options: {}, labels: {} }, nullable: ['subnet', 'gateway', 'ipRange'] },
      { target: '/networks/lan/connect', base: { container: 'q1', ip: '10.213.7.77', aliases: [] }, nullable: ['ip'] },
      { target: '/networks/lan/disconnect', base: { container: 'q1', force: false }, nullable: [] },
      { target: '/containers', base: { name: 'q1', network: 'lan', ip: '10.213.7.78', aliases: [], hostname: 'q1', mac: '02:42:0a:d5:07:4e', publish: [] }, nullable: ['ip', 'hostname', 'mac'] },
      { target: '/attachments', base: { name: 'q1', network: 'lan', tap: 'q1tap', iface: 'q1', qemuStream: '/q', qemuDgram: '/q' }, nullable: [] },
      { target: '/compose/up', base: { plan }, nullable: [] },
      { target: '/compose/down', base: { project: 'qproj', plan }, nullable: [] },
    ];
    const wrong: unknown[] = [7, true, null, {}, [], 'str', [1], { a: 1 }];
    const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
    let n = 0;
    for (const { target, base, nullable } of endpoints) {
      for (const field of Object.keys(base)) {
        for (const v of wrong) {
          const expected = kind(base[field]);
          if (kind(v) === expected || (v === null && nullable.includes(field))) continue;
          if (expected === 'object' && kind(v) === 'object') continue;
          const a = await request('POST', target, { ...base, [field]: v });
          expect(a.status, `${target} ${field}=${JSON.stringify(v)}`).toBe(400);
          expect(a.message, `${target} ${field}=${JSON.stringify(v)}`).toMatch(new RegExp(`^invalid request: ${field}(\\.|\\[|:)`));
          n++;
        }
      }
      // an unknown field, a body that is not an object, bad JSON, a wrong content type
      expect((await request('POST', target, { ...base, bogus: 1 })).message).toBe('invalid request: bogus: unknown field');
      expect((await request('POST', target, [base])).message).toBe('invalid request: expected object, received array');
      expect((await request('POST', target, JSON.stringify(base).slice(0, 20))).message).toMatch(/^request body is not valid JSON/);
      expect((await request('POST', target, base, 'text/plain')).status).toBe(415);
    }
    // nested compose plan fields
    const nested: [string, (p: any) => void][] = [
      ['plan.networks[0].spec.options', (p) => (p.networks[0].spec.options = 'x')],
      ['plan.networks[0].external', (p) => (p.networks[0].external = 'no')],
      ['plan.containers[0].attachments[0].aliases', (p) => (p.containers[0].attachments[0].aliases = 'web')],
      ['plan.containers[0].ports[0].containerPort', (p) => (p.containers[0].ports[0].containerPort = '80')],
      ['plan.containers[0].networkMode', (p) => (p.containers[0].networkMode = 5)],
      ['plan.containers[0].labels', (p) => (p.containers[0].labels = [])],
      ['plan.containers[0].attachments', (p) => (p.containers[0].attachments = [])],
    ];
    for (const [path, mutate] of nested) {
      const p = structuredClone(plan);
      mutate(p);
      const a = await request('POST', '/compose/up', { plan: p });
      expect(a.status, path).toBe(400);
      expect(a.message!.startsWith(`invalid request: ${path}`), `${path}: ${a.message}`).toBe(true);
    }
    expect(n).toBeGreaterThan(150);
    // bad query strings
    expect((await request('GET', '/capture?target=lan&count=-1')).status).toBe(400);
    expect((await request('GET', '/capture?count=1')).message).toBe('invalid request: target: is required');
    expect(await request('GET', '/capture?target=qnone&count=1')).toMatchObject({ status: 404, message: 'no such network or container: qnone' });
    expect((await request('GET', '/networks?format=yaml')).status).toBe(400);
    // nothing changed: state file, the daemon's namespaces, the containers' interfaces
    expect(readFileSync(stateFile(), 'utf8')).toBe(before);
    expect(d.leftovers().sort()).toEqual([`${d.prefix}aa`, `${d.prefix}bb`]);
    expect(linksOf('bb')).toMatch(/eth0/);
  }, 60_000);

  it('survives clients that hang up mid-request, mid-body and mid-answer', async () => {
    const hangUp = (data: string) =>
      new Promise<void>((resolve) => {
        const s = net.connect(d.socket, () => {
          s.write(data);
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 5);
        });
        s.on('error', () => resolve());
      });
    for (let i = 0; i < 5; i++) {
      await hangUp('GET /capture?target=lan HTTP/1.1\r\nHost: x\r\n\r\n');
      await hangUp('GET /networks HTTP/1.1\r\nHost: x\r\n\r\n');
      await hangUp('POST /networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":');
      await hangUp('POST /networks/lan/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"container":"q1"}  ');
    }
    await new Promise((r) => setTimeout(r, 200));
    expect((await request('GET', '/info')).status).toBe(200);
  }, 30_000);

  it('fast-check: random and malformed requests never get a 5xx and never kill the daemon', async () => {
    const before = JSON.parse(readFileSync(stateFile(), 'utf8'));
    const plan = JSON.parse(JSON.stringify(planCompose(readFileSync(join(ROOT, 'test/fixtures/compose/frontend-backend.yml'), 'utf8'), 'f.yml', 'qfz')));
    const accepted: string[] = [];
    await fc.assert(
      fc.asyncProperty(apiRequests(plan), contentTypes, async ([m, t, b], ct) => {
        const a = await request(m, t, b, ct);
        if (a.status < 400) {
          if (m !== 'GET') accepted.push(`${m} ${t} ${b ?? ''}`);
          return true;
        }
        // every refusal is a 4xx with a one-line message
        if (!(a.status < 500 && typeof a.message === 'string' && a.message.length > 0 && !a.message.includes('\n'))) {
          throw new Error(`${m} ${t} (${ct}) ${b ?? ''} → ${a.status} ${a.body}`);
        }
        return true;
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 400), seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), verbose: 1 },
    );

    // the same daemon, still answering
    const info = await request('GET', '/info');
    expect(info.status).toBe(200);
    expect(JSON.parse(info.body).pid).toBe(daemonPid);
    // the lab's own records are untouched; anything else came from an accepted request, and goes again
    const after = JSON.parse(readFileSync(stateFile(), 'utf8'));
    const ids = new Set([...before.networks, ...before.containers].map((x: { id: string }) => x.id));
    expect(after.networks.filter((x: { id: string }) => ids.has(x.id))).toEqual(before.networks);
    expect(after.containers.filter((x: { id: string }) => ids.has(x.id))).toEqual(before.containers);
    const extra = [...after.networks, ...after.containers].filter((x: { id: string }) => !ids.has(x.id));
    for (const x of extra) expect(accepted.some((r) => r.includes(x.name)), `${x.name} was made by an accepted request`).toBe(true);
    for (const c of after.containers.filter((x: { id: string }) => !ids.has(x.id))) d.ok('rm', '-f', c.id);
    for (const a of JSON.parse((await request('GET', '/attachments')).body) as { Name: string }[]) d.ok('detach', a.Name);
    d.ok('network', 'prune', '-f');
    expect(JSON.parse(readFileSync(stateFile(), 'utf8'))).toEqual(before);
  }, 120_000);

  it('afterwards: never a 5xx, and the containers still have their interfaces and ping each other', () => {
    expect(answers.filter((a) => a.status >= 500)).toEqual([]);
    expect(answers.length).toBeGreaterThan(500);
    expect(linksOf('aa')).toMatch(/eth0/);
    expect(linksOf('bb')).toMatch(/eth0/);
    expect(d.ping('aa', ipB)).toBe(true);
    expect(d.ping('aa', 'bee')).toBe(true);
  }, 30_000);
});
