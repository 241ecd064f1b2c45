/**
 * Known bytes over real TCP, checked by sha256 on the far side
 * (test/fixtures/blob.py): the offload scenarios move a seeded blob each
 * way on every path and compare digests.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ROOT } from '../src/lab/lab.js';

const BLOB = join(ROOT, 'test', 'fixtures', 'blob.py');
let seed = 1;

type Server = ChildProcess & { lines: string[] };

/** blob.py serve|sink in a namespace; resolves once it listens. The child is pushed on `track`. */
async function blobServer(track: ChildProcess[], where: string, args: string[]): Promise<Server> {
  const p = spawn('ip', ['netns', 'exec', where, 'python3', BLOB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) as Server;
  track.push(p);
  p.lines = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`blob server in ${where} did not start`)), 5000);
    p.stdout!.on('data', (b) => {
      buf += String(b);
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) {
        if (l === 'ready') {
          clearTimeout(t);
          resolve();
        } else p.lines.push(l);
      }
    });
  });
  return p;
}

/** "BYTES SHA256" of the blob of `size` bytes with `seed`. */
export function blobDigest(size: number, s: number): string {
  return execFileSync('python3', [BLOB, 'expect', String(size), String(s)]).toString().trim();
}

/**
 * `from` fetches a fresh blob served in `to` (reached as host:port; the
 * server listens on `listen`), then pushes another one back; both digests
 * must match what was sent.
 */
export async function blobRoundTrip(track: ChildProcess[], from: string, to: string, host: string, port: number, size: number, listen = port): Promise<void> {
  const s1 = seed++;
  const srv = await blobServer(track, to, ['serve', String(listen), String(size), String(s1), '--once']);
  const got = spawnSync('ip', ['netns', 'exec', from, 'python3', BLOB, 'fetch', host, String(port)], { encoding: 'utf8', timeout: 60_000 });
  expect(got.stdout.trim(), `fetch ${from} → ${host}:${port}: ${got.stderr}`).toBe(blobDigest(size, s1));
  if (srv.exitCode === null) srv.kill();
  const s2 = seed++;
  const sink = await blobServer(track, to, ['sink', String(listen), '--once']);
  const sent = spawnSync('ip', ['netns', 'exec', from, 'python3', BLOB, 'push', host, String(port), String(size), String(s2)], { encoding: 'utf8', timeout: 60_000 });
  expect(sent.status, `push ${from} → ${host}:${port}: ${sent.stderr}`).toBe(0);
  const t0 = Date.now();
  while (sink.lines.length === 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
  expect(sink.lines[0], `push ${from} → ${host}:${port}`).toBe(blobDigest(size, s2));
}
