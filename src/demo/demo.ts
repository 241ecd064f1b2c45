/**
 * The demo: the seeds' compose example (web on frontend, app on frontend
 * and backend, db on backend, web publishing port 80) brought up with
 * `usernet up`, plus an outside host behind usernet's uplink. Real traffic
 * by name through the userspace dataplane: who reaches whom, out through
 * NAT and in through the published port; then everything torn down.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { exitAfterFlush } from '../control/cli-stdout.js';
import { DaemonLab, isRoot, ROOT } from '../lab/lab.js';

const FIX = join(ROOT, 'test', 'fixtures');
const COMPOSE = join(ROOT, 'demo', 'compose.yml');

function show(lab: DaemonLab, ...args: string[]): string {
  process.stdout.write(`$ usernet ${args.join(' ')}\n`);
  const out = lab.ok(...args);
  const text = out.trimEnd();
  if (text) process.stdout.write(text.replace(/^/gm, '  ') + '\n');
  return out;
}

async function main(): Promise<number> {
  if (!isRoot) {
    process.stderr.write('usernet demo: needs root (it creates network namespaces and TAP devices)\n');
    return 1;
  }
  const lab = new DaemonLab('demo');
  lab.daemonArgs = ['--uplink', 'tap:unup0,ip=192.0.2.2/24,gw=192.0.2.1'];
  const outside = `${lab.prefix}outside`;
  const procs: ChildProcess[] = [];
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const serve = async (ns: string, tag: string, port: number) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'python3', join(FIX, 'peer_server.py'), 'tcp', String(port), tag], { stdio: ['ignore', 'pipe', 'ignore'] });
    procs.push(p);
    await new Promise<void>((r) => p.stdout!.once('data', () => r()));
  };
  const ask = (ns: string, host: string, port: number): string | null => {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'python3', join(FIX, 'peer_client.py'), 'tcp', host, String(port)], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  let wrong = 0;
  const rows: string[][] = [['from', 'to', 'how', 'result', 'expected']];
  const check = (from: string, to: string, how: string, ok: boolean, expected: boolean, detail = '') => {
    if (ok !== expected) wrong++;
    rows.push([from, to, how, `${ok ? '✓' : '✗'}${detail ? ' ' + detail : ''}`, `${expected ? '✓' : '✗'}${ok !== expected ? '  ← UNEXPECTED' : ''}`]);
  };
  try {
    process.stdout.write("== usernet demo: the seeds' compose example, through a userspace switch, router and NAT ==\n\n");
    await lab.start();
    // the lab's outside host: the uplink TAP's kernel side, with a TCP server on port 7000
    ip('netns', 'add', outside);
    ip('-n', outside, 'link', 'set', 'lo', 'up');
    ip('-n', lab.hostNs, 'link', 'set', 'unup0', 'netns', outside);
    ip('-n', outside, 'addr', 'add', '192.0.2.1/24', 'dev', 'unup0');
    ip('-n', outside, 'link', 'set', 'unup0', 'up');
    await serve(outside, 'outside', 7000);
    process.stdout.write(`outside host: 192.0.2.1 (usernet's uplink address is 192.0.2.2)\n\n`);

    show(lab, 'up', '-f', COMPOSE, '-p', 'seeds');
    show(lab, 'ps');
    await serve(lab.prefix + 'seeds-web-1', 'web', 80);

    const ns = (svc: string) => lab.prefix + `seeds-${svc}-1`;
    const ping = (from: string, to: string) => lab.ping(`seeds-${from}-1`, to, 2);
    process.stdout.write('\nWho reaches whom (names resolved by the embedded DNS at 127.0.0.11):\n\n');
    check('web', 'app', 'ping app', ping('web', 'app'), true);
    check('app', 'web', 'ping web', ping('app', 'web'), true);
    check('app', 'db', 'ping db', ping('app', 'db'), true);
    check('db', 'app', 'ping app', ping('db', 'app'), true);
    const webDb = lab.exec('seeds-web-1', 'getent', 'hosts', 'db').code === 0;
    check('web', 'db', 'resolve db', webDb, false, webDb ? '' : '(no such name on frontend)');
    const dbIp = JSON.parse(lab.ok('inspect', 'seeds-db-1'))[0].NetworkSettings.Networks.seeds_backend_network.IPAddress;
    check('web', 'db', `ping ${dbIp}`, ping('web', dbIp), false);
    const out = ask(ns('web'), '192.0.2.1', 7000);
    check('web', 'outside', 'tcp 192.0.2.1:7000', out !== null, true, out ? `(server saw ${out.split(' ')[1]})` : '');
    const inb = ask(outside, '192.0.2.2', 80);
    check('outside', 'web', 'tcp 192.0.2.2:80 (-p 80:80)', inb !== null, true, inb ? `(web saw ${inb.split(' ')[1]})` : '');
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) process.stdout.write(('  ' + r.map((c, i) => c.padEnd(w[i])).join('   ')).trimEnd() + '\n');
    process.stdout.write('\n');
    show(lab, 'conntrack');
    show(lab, 'stats');
    process.stdout.write(
      wrong === 0
        ? '\nRESULT: as Docker behaves — web↔app ✓, app↔db ✓, web↔db ✗ (by name and by address), web→outside ✓ via NAT, outside→web ✓ via the published port.\n'
        : `\nRESULT: ${wrong} check(s) did not behave as Docker does.\n`,
    );
    process.stdout.write('\nTearing down…\n');
    show(lab, 'down', '-p', 'seeds');
    return wrong === 0 ? 0 : 1;
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await lab.cleanup();
    process.stdout.write(`done: daemon stopped, no namespace left (${lab.leftovers().length} leftovers).\n`);
  }
}

// exit once the output is written out (a pipe takes it asynchronously), quietly when the reader went away
main().then(
  (code) => exitAfterFlush(code),
  (e) => {
    process.stderr.write(`usernet demo failed: ${e instanceof Error ? e.message : e}\n`);
    exitAfterFlush(1);
  },
);
