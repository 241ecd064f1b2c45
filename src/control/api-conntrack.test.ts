import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CT_ORIGINAL, CT_REPLY, Conntrack, formatConntrack } from '../nat/conntrack.js';
import { serveConntrack } from './api-conntrack.js';
import { HttpError } from './http-error.js';

/** GET /conntrack of an in-process server holding `ct`, read slowly when `slow` (backpressure) */
describe('GET /conntrack (streamed)', () => {
  const ct = new Conntrack({ capacity: 8192, seed: 3 });
  let server: http.Server;
  let port = 0;
  const now = 5000;

  beforeAll(async () => {
    // 5000 flows spread over the ids (some removed), UDP, half replied
    for (let i = 0; i < 6000; i++) {
      const f = ct.create(17, 0x0a000002, 1000 + i, 0xc0000201, 53, 0xc0000201, 53, 0xc0000202, 1000 + i, 0, 2);
      ct.seen(f, CT_ORIGINAL, 0, 60, 0);
      if (i % 2) ct.seen(f, CT_REPLY, 0, 80, 1);
    }
    for (let f = 0; f < 6000; f += 6) ct.remove(f);
    server = http.createServer((req, res) => {
      serveConntrack(new URL(req.url ?? '/', 'http://x'), res, ct, () => now).catch((e: unknown) => {
        const status = e instanceof HttpError ? e.status : 500;
        res.writeHead(status).end((e as Error).message);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  function get(path: string, slow = false): Promise<{ status: number; type: string; body: string; chunks: number }> {
    return new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => {
          parts.push(b);
          if (slow) {
            res.pause();
            setTimeout(() => res.resume(), 1);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(parts).toString('utf8'), chunks: parts.length }));
        res.on('error', reject);
      }).on('error', reject);
    });
  }

  it('text: the same lines as formatConntrack(list()), in several chunks', async () => {
    const r = await get('/conntrack', true);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain/);
    expect(ct.size).toBe(5000);
    expect(r.body).toBe(formatConntrack(ct.list(now)));
    expect(r.chunks).toBeGreaterThan(1);
  });

  it('json: a valid array of the same flows (and an empty table is [])', async () => {
    const r = await get('/conntrack?format=json');
    expect(r.type).toBe('application/json');
    expect(JSON.parse(r.body)).toEqual(ct.list(now));
    const empty = new Conntrack({ capacity: 4 });
    const res = await new Promise<string>((resolve) => {
      const s = http.createServer((_q, out) => void serveConntrack(new URL('http://x/conntrack?format=json'), out, empty, () => 0));
      s.listen(0, '127.0.0.1', () => {
        http.get({ host: '127.0.0.1', port: (s.address() as AddressInfo).port, path: '/' }, (m) => {
          let b = '';
          m.on('data', (c) => (b += c));
          m.on('end', () => s.close(() => resolve(b)));
        });
      });
    });
    expect(JSON.parse(res)).toEqual([]);
  });

  it('refuses an unknown format with 400 before sending anything', async () => {
    const r = await get('/conntrack?format=xml');
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/invalid format "xml"/);
  });
});
