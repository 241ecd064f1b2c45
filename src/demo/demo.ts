/**
 * The demo: the seeds' two-network example built with the usernet CLI —
 * web on frontend, app on frontend and backend, db on backend — real pings
 * between every pair through the userspace dataplane, a reachability
 * matrix, the counters, then everything torn down.
 */
import { DaemonLab, isRoot } from '../lab/lab.js';

const EXPECTED: Record<string, boolean> = {
  'web>app': true,
  'app>web': true,
  'app>db': true,
  'db>app': true,
  'web>db': false,
  'db>web': false,
};

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
  try {
    process.stdout.write('== usernet demo: the seeds\' frontend/backend example, through a userspace switch ==\n\n');
    await lab.start();
    show(lab, 'network', 'create', 'frontend');
    show(lab, 'network', 'create', 'backend');
    show(lab, 'run', '--name', 'web', '--network', 'frontend');
    show(lab, 'run', '--name', 'app', '--network', 'frontend');
    show(lab, 'network', 'connect', 'backend', 'app');
    show(lab, 'run', '--name', 'db', '--network', 'backend');
    show(lab, 'network', 'ls');
    show(lab, 'ps');

    const addrs: Record<string, Record<string, string>> = {};
    for (const name of ['web', 'app', 'db']) {
      const nets = JSON.parse(lab.ok('inspect', name))[0].NetworkSettings.Networks as Record<string, { IPAddress: string }>;
      addrs[name] = Object.fromEntries(Object.entries(nets).map(([k, v]) => [k, v.IPAddress]));
    }
    const target = (from: string, to: string): string => {
      for (const net of Object.keys(addrs[from])) if (addrs[to][net]) return addrs[to][net];
      return Object.values(addrs[to])[0];
    };

    process.stdout.write('\nReachability (ping -c 2 from row to column, real ICMP through usernet):\n\n');
    const names = ['web', 'app', 'db'];
    let wrong = 0;
    const rows = [['from \\ to', ...names]];
    for (const from of names) {
      const row = [from];
      for (const to of names) {
        if (from === to) {
          row.push('—');
          continue;
        }
        const ok = lab.ping(from, target(from, to), 2);
        const exp = EXPECTED[`${from}>${to}`];
        if (ok !== exp) wrong++;
        row.push(`${ok ? '✓' : '✗'} ${target(from, to)}${ok !== exp ? ' (UNEXPECTED)' : ''}`);
      }
      rows.push(row);
    }
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) process.stdout.write(('  ' + r.map((c, i) => c.padEnd(w[i])).join('   ')).trimEnd() + '\n');
    process.stdout.write('\n');
    show(lab, 'stats');
    process.stdout.write(
      wrong === 0
        ? '\nRESULT: as Docker behaves — web↔app ✓, app↔db ✓, web↔db ✗ (frontend and backend are isolated).\n'
        : `\nRESULT: ${wrong} pair(s) did not behave as Docker does.\n`,
    );
    process.stdout.write('\nTearing down…\n');
    for (const c of ['web', 'app', 'db']) lab.ok('rm', '-f', c);
    lab.ok('network', 'rm', 'frontend', 'backend');
    return wrong === 0 ? 0 : 1;
  } finally {
    await lab.cleanup();
    process.stdout.write(`done: daemon stopped, no namespace left (${lab.leftovers().length} leftovers).\n`);
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`usernet demo failed: ${e instanceof Error ? e.message : e}\n`);
    process.exit(1);
  },
);
