/**
 * Compose and DNS end to end:
 * - `usernet up` of 50 services on 5 networks (every tenth service on two),
 *   beside the anchor: the same 50 namespaces, 5 bridges and 55 veth links
 *   with their addresses made directly with iproute2 (`ip -batch`);
 * - DNS queries/s from a container: a Node client loop of sequential UDP
 *   queries for service names to 127.0.0.11 (usernet's embedded DNS), beside
 *   the same client against a minimal dns-packet server in that namespace.
 * Everything made here is removed, also on failure.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonLab, ROOT, uniquePrefix } from '../src/lab/lab.js';
import { inNs, removeNetns, stop } from './lab-util.js';
import type { Row } from './table.js';

const SERVICES = 50;
const NETWORKS = 5;

function composeText(): string {
  const lines = ['services:'];
  for (let i = 0; i < SERVICES; i++) {
    lines.push(`  s${i}:`, '    image: x', '    networks:', `      - n${i % NETWORKS}`);
    if (i % 10 === 0) lines.push(`      - n${(i + 1) % NETWORKS}`);
  }
  lines.push('networks:');
  for (let n = 0; n < NETWORKS; n++) lines.push(`  n${n}:`, '    ipam:', '      config:', `        - subnet: 10.${140 + n}.0.0/24`);
  return lines.join('\n') + '\n';
}

/** The anchor: the same topology with iproute2 alone. Returns seconds. */
function iprouteAnchor(prefix: string): number {
  const t0 = process.hrtime.bigint();
  const br = `${prefix}br`;
  const cmds: string[] = [`netns add ${br}`];
  for (let i = 0; i < SERVICES; i++) cmds.push(`netns add ${prefix}s${i}`);
  execFileSync('ip', ['-batch', '-'], { input: cmds.join('\n') + '\n' });
  const inBr: string[] = [];
  for (let n = 0; n < NETWORKS; n++) inBr.push(`link add b${n} type bridge`, `link set b${n} up`);
  const perNs: string[][] = [];
  for (let i = 0; i < SERVICES; i++) {
    const nets = [i % NETWORKS, ...(i % 10 === 0 ? [(i + 1) % NETWORKS] : [])];
    const mine: string[] = [];
    nets.forEach((n, k) => {
      const v = `v${i}x${k}`;
      inBr.push(`link add ${v} type veth peer name eth${k} netns ${prefix}s${i}`, `link set ${v} master b${n} up`);
      mine.push(`addr add 10.${140 + n}.0.${i + 2}/24 dev eth${k}`, `link set eth${k} up`);
    });
    perNs.push(mine);
  }
  execFileSync('ip', ['-n', br, '-batch', '-'], { input: inBr.join('\n') + '\n' });
  perNs.forEach((c, i) => execFileSync('ip', ['-n', `${prefix}s${i}`, '-batch', '-'], { input: c.join('\n') + '\n' }));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchCompose(opts: { seconds?: number } = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 2;
  const lab = new DaemonLab('bc');
  const prefix = uniquePrefix('ba');
  const dir = mkdtempSync(join(tmpdir(), 'usernet-bench-'));
  const file = join(dir, 'compose.yml');
  writeFileSync(file, composeText());
  const procs: ReturnType<typeof spawn>[] = [];
  try {
    const anchor = iprouteAnchor(prefix);
    await lab.start();
    const t0 = process.hrtime.bigint();
    lab.ok('up', '-f', file, '-p', 'b50');
    const upS = Number(process.hrtime.bigint() - t0) / 1e9;

    // DNS from inside s1's namespace
    const ns = lab.prefix + 'b50-s1-1';
    const names = Array.from({ length: 10 }, (_, k) => `s${(k * 5 + 1) % SERVICES}`); // services sharing n1 with s1
    const client = (server: string, port: number) => {
      const r = spawnSync(...inNs(ns, [process.execPath, join(ROOT, 'bench', 'clients', 'dns-client.mjs'), server, String(port), String(seconds), ...names]), {
        encoding: 'utf8',
        cwd: ROOT,
        timeout: (seconds + 10) * 1000,
      });
      const j = JSON.parse(r.stdout);
      if (j.answered < j.queries * 0.9) throw new Error(`dns client against ${server}: ${j.answered}/${j.queries} answered`);
      return j.qps as number;
    };
    const anchorSrv = spawn(...inNs(ns, [process.execPath, join(ROOT, 'bench', 'clients', 'dns-anchor.mjs'), '5300']), { stdio: ['ignore', 'pipe', 'ignore'], cwd: ROOT });
    procs.push(anchorSrv);
    await new Promise<void>((r) => anchorSrv.stdout!.once('data', () => r()));
    client('127.0.0.11', 53); // warm-up
    const qps = client('127.0.0.11', 53);
    const qpsAnchor = client('127.0.0.1', 5300);
    const t1 = process.hrtime.bigint();
    lab.ok('down', '-p', 'b50');
    const downS = Number(process.hrtime.bigint() - t1) / 1e9;
    return [
      { name: `usernet up, ${SERVICES} services on ${NETWORKS} networks`, value: upS, unit: 's', anchorName: 'iproute2 -batch, same topology', anchor, ratio: upS / anchor, note: `down: ${downS.toFixed(2)} s` },
      {
        name: 'DNS A queries/s from a container (sequential UDP)',
        value: qps,
        unit: 'q/s',
        anchorName: 'minimal dns-packet server, same ns',
        anchor: qpsAnchor,
        ratio: qps / qpsAnchor,
        note: '127.0.0.11 → nft DNAT → usernet (table lookup, round robin)',
      },
    ];
  } finally {
    for (const p of procs) await stop(p);
    await lab.cleanup();
    removeNetns(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}
