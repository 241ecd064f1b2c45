/**
 * usernet CLI: docker-like commands, each one a request to the daemon over
 * its unix socket (JSON over HTTP). `daemon` starts the daemon in this
 * process; `exec` runs a command in a container's namespace directly.
 */
import { spawn } from 'node:child_process';
import { open, type FileHandle } from 'node:fs/promises';
import { Command, CommanderError } from 'commander';
import { Client, socketPath } from './client.js';
import { describeFrame, PcapReader } from './pcap.js';
import { pipeOut } from './cli-stdout.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function kv(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    // as Docker: a bare KEY (`-o encrypted`) is KEY with an empty value
    const i = item.indexOf('=');
    if (i === 0 || item === '') throw new Error(`invalid ${what} "${item}": expected KEY=VALUE or KEY`);
    if (i < 0) out[item] = '';
    else out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

function withNewline(s: string): string {
  return s.endsWith('\n') ? s : s + '\n';
}

function print(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj, null, 4) + '\n');
}

/** The pcap file of `capture -w`, opened (created or truncated) before anything is asked of the daemon. */
async function openCaptureFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'w', 0o644);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such directory' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : (err.code ?? err.message);
    throw new Error(`cannot write ${path}: ${why}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('usernet')
    .description('userspace emulator of Docker networking over real TAP devices')
    .option('--socket <path>', 'daemon socket (default $USERNET_SOCKET or /run/usernet/usernet.sock)')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  const client = () => new Client(socketPath(program.opts().socket));
  let exitCode = 0;

  program
    .command('daemon')
    .description('run the daemon (holds every device and all state)')
    .option('--state-dir <dir>', 'where networks and containers are kept', '/var/lib/usernet')
    .option('--uplink <spec>', 'the outside: tap:NAME,ip=CIDR,gw=IP or iface:NAME,ip=CIDR,gw=IP')
    .option('--dns <ip>', 'upstream resolver for names the embedded DNS does not know (repeatable)', collect, [])
    .option('--cluster <url>', 'etcd://HOST:PORT: share overlay networks with the other daemons')
    .option('--advertise <ip>', "this host's address on the underlay (its VXLAN tunnel endpoint)")
    .option('--cluster-ttl <seconds>', 'lease of this daemon\'s cluster records: they vanish this long after it dies', '15')
    .option('--netns-prefix <prefix>', 'prefix of the namespaces made for containers', 'usernet-')
    .option('--log-level <level>', 'trace|debug|info|warn|error', 'info')
    .option('--offload <on|off>', 'super-frames on every TAP and parent interface: TSO and checksum offload with the containers\' kernels (off: one frame per MTU, as before)', 'on')
    .option('--busy-poll <ms>', 'poll this long after every burst of traffic instead of sleeping (lowest latency, a core busy while traffic flows). Default: adaptive (polls only while frames come less than 0.05 ms apart; an idle daemon sleeps). 0 = never poll')
    .action(async (o) => {
      const busyPollMs = o.busyPoll === undefined ? undefined : Number(o.busyPoll);
      if (busyPollMs !== undefined && (!/^[0-9.]+$/.test(o.busyPoll) || !Number.isFinite(busyPollMs) || busyPollMs < 0 || busyPollMs > 1000)) throw new Error(`invalid --busy-poll "${o.busyPoll}": milliseconds from 0 to 1000`);
      if (o.offload !== 'on' && o.offload !== 'off') throw new Error(`invalid --offload "${o.offload}": on or off`);
      const { runDaemon } = await import('./daemon-run.js');
      exitCode = await runDaemon({
        socket: socketPath(program.opts().socket),
        stateDir: o.stateDir,
        netnsPrefix: o.netnsPrefix,
        logLevel: o.logLevel,
        busyPollMs,
        offload: o.offload === 'on',
        dns: o.dns,
        uplink: o.uplink,
        cluster: o.cluster,
        advertise: o.advertise,
        clusterTtl: Number(o.clusterTtl),
      });
    });

  const network = program.command('network').description('manage networks');
  network
    .command('create')
    .argument('<name>')
    .option('-d, --driver <driver>', 'bridge|overlay|macvlan|ipvlan', 'bridge')
    .option('--subnet <cidr>')
    .option('--gateway <ip>')
    .option('--ip-range <cidr>')
    .option('--internal', 'no route out, no published ports', false)
    .option('--attachable', 'allow manual attachment (overlay)', false)
    .option('-o, --opt <key=value>', 'driver option', collect, [])
    .option('--label <key=value>', 'label', collect, [])
    .action(async (name, o) => {
      const net = await client().request<{ Id: string }>('POST', '/networks', {
        name,
        driver: o.driver,
        subnet: o.subnet,
        gateway: o.gateway,
        ipRange: o.ipRange,
        internal: o.internal,
        attachable: o.attachable,
        options: kv(o.opt, 'option'),
        labels: kv(o.label, 'label'),
      });
      process.stdout.write(net.Id + '\n');
    });
  network
    .command('ls')
    .alias('list')
    .option('-q, --quiet', 'only ids', false)
    .action(async (o) => {
      const r = await client().request<{ table: string; ids: string[] }>('GET', '/networks?format=table');
      process.stdout.write(o.quiet ? r.ids.map((i) => i.slice(0, 12)).join('\n') + '\n' : withNewline(r.table));
    });
  network
    .command('inspect')
    .argument('<names...>')
    .action(async (names: string[]) => {
      const out = [];
      for (const n of names) out.push(await client().request('GET', `/networks/${encodeURIComponent(n)}`));
      print(out);
    });
  network
    .command('rm')
    .alias('remove')
    .argument('<names...>')
    .action(async (names: string[]) => {
      for (const n of names) {
        try {
          await client().request('DELETE', `/networks/${encodeURIComponent(n)}`);
          process.stdout.write(n + '\n');
        } catch (e) {
          process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
          exitCode = 1;
        }
      }
    });
  network
    .command('prune')
    .option('-f, --force', 'do not prompt (always on)', true)
    .action(async () => {
      const r = await client().request<{ removed: string[] }>('POST', '/networks/prune');
      if (r.removed.length) process.stdout.write('Deleted Networks:\n' + r.removed.join('\n') + '\n');
    });
  network
    .command('connect')
    .argument('<network>')
    .argument('<container>')
    .option('--ip <ip>')
    .option('--alias <name>', 'network-scoped alias', collect, [])
    .action(async (net, ctr, o) => {
      await client().request('POST', `/networks/${encodeURIComponent(net)}/connect`, { container: ctr, ip: o.ip, aliases: o.alias });
    });
  network
    .command('disconnect')
    .argument('<network>')
    .argument('<container>')
    .option('-f, --force', 'force', false)
    .action(async (net, ctr) => {
      await client().request('POST', `/networks/${encodeURIComponent(net)}/disconnect`, { container: ctr });
    });

  program
    .command('run')
    .description('create a container: a network namespace with an interface per network')
    .requiredOption('--name <name>')
    .option('--network <net>', 'network, host or none (default: bridge)')
    .option('--net <net>', 'same as --network')
    .option('--ip <ip>')
    .option('--alias <name>', 'network-scoped alias', collect, [])
    .option('--network-alias <name>', 'same as --alias', collect, [])
    .option('--hostname <hostname>')
    .option('--mac-address <mac>')
    .option('-p, --publish <spec>', 'publish a port (NAT: later issue)', collect, [])
    .option('-d, --detach', 'accepted for docker compatibility (always detached)', false)
    .action(async (o) => {
      const r = await client().request<{ Id: string; Warnings?: string[] }>('POST', '/containers', {
        name: o.name,
        network: o.network ?? o.net ?? 'bridge',
        ip: o.ip,
        aliases: [...o.alias, ...o.networkAlias],
        hostname: o.hostname,
        mac: o.macAddress,
        publish: o.publish,
      });
      for (const w of r.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
      process.stdout.write(r.Id + '\n');
    });
  program
    .command('exec')
    .description("run COMMAND inside the container's network namespace")
    .argument('<name>')
    .argument('<command...>')
    .passThroughOptions()
    .action(async (name: string, command: string[]) => {
      if (command[0] === '--') command = command.slice(1);
      if (!command.length) throw new Error('exec needs a command: usernet exec NAME -- COMMAND [ARG...]');
      const c = await client().request<{ Netns: string | null; DaemonPid: number }>('GET', `/containers/${encodeURIComponent(name)}`);
      const argv = c.Netns ? ['ip', 'netns', 'exec', c.Netns, ...command] : ['nsenter', `--net=/proc/${c.DaemonPid}/ns/net`, '--', ...command];
      exitCode = await new Promise<number>((resolve) => {
        const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
        child.on('error', (e) => {
          process.stderr.write(`usernet: ${e.message}\n`);
          resolve(127);
        });
        child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 + 15 : 1)));
      });
    });
  program
    .command('ps')
    .option('-q, --quiet', 'only ids', false)
    .action(async (o) => {
      const r = await client().request<{ table: string; ids: string[] }>('GET', '/containers?format=table');
      process.stdout.write(o.quiet ? r.ids.map((i) => i.slice(0, 12)).join('\n') + (r.ids.length ? '\n' : '') : withNewline(r.table));
    });
  program
    .command('inspect')
    .argument('<names...>')
    .action(async (names: string[]) => {
      const out = [];
      for (const n of names) out.push(await client().request('GET', `/containers/${encodeURIComponent(n)}`));
      print(out);
    });
  program
    .command('rm')
    .argument('<names...>')
    .option('-f, --force', 'accepted (containers are endpoints; always removable)', false)
    .action(async (names: string[]) => {
      for (const n of names) {
        try {
          await client().request('DELETE', `/containers/${encodeURIComponent(n)}`);
          process.stdout.write(n + '\n');
        } catch (e) {
          process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
          exitCode = 1;
        }
      }
    });
  program
    .command('up')
    .description('bring up the networking of a compose file')
    .option('-f, --file <file>', 'compose file (default: compose.yaml/compose.yml/docker-compose.y[a]ml here)')
    .option('-p, --project-name <name>', 'project name (default: the directory name)')
    .option('-d, --detach', 'accepted (always detached)', false)
    .action(async (o) => {
      const { loadCompose } = await import('./compose.js');
      const plan = await loadCompose(o.file, o.projectName);
      for (const w of plan.warnings) process.stderr.write(`WARNING: ${w}\n`);
      const r = await client().request<{ lines: string[] }>('POST', '/compose/up', { plan });
      for (const l of r.lines) process.stdout.write(` ✔ ${l}\n`);
    });
  program
    .command('down')
    .description("remove a compose project's containers and networks")
    .option('-f, --file <file>', 'compose file (to find the project name)')
    .option('-p, --project-name <name>', 'project name')
    .action(async (o) => {
      let project: string | undefined = o.projectName;
      let plan: unknown;
      if (!project || o.file) {
        const { loadCompose } = await import('./compose.js');
        const p = await loadCompose(o.file, project);
        project = p.project;
        plan = p;
      }
      const r = await client().request<{ lines: string[] }>('POST', '/compose/down', { project, plan });
      for (const l of r.lines) process.stdout.write(` ✔ ${l}\n`);
    });
  program
    .command('port')
    .description("list a container's published ports")
    .argument('<name>')
    .action(async (name: string) => {
      const r = await client().request<{ lines: string[] }>('GET', `/containers/${encodeURIComponent(name)}/port`);
      if (r.lines.length) process.stdout.write(r.lines.join('\n') + '\n');
    });
  program
    .command('attach')
    .description(
      'put an endpoint that configures itself by DHCP (a VM) on a bridge or overlay network (the gateway serves the upper half of the subnet and answers DNS). Give exactly one of --tap, --qemu-stream, --qemu-dgram, --iface. Remove it with `usernet detach NAME`.',
    )
    .argument('<name>')
    .requiredOption('--network <network>')
    .option('--tap <ifname>', "a TAP made in the daemon's namespace (must not exist); move it where you like")
    .option('--qemu-stream <path>', 'a unix socket QEMU connects to: -netdev stream,id=n0,addr.type=unix,addr.path=PATH')
    .option('--qemu-dgram <path>', 'unix datagram sockets: usernet binds PATH, QEMU binds PATH.vm: -netdev dgram,id=n0,local.type=unix,local.path=PATH.vm,remote.type=unix,remote.path=PATH')
    .option('--iface <ifname>', "an existing interface in the daemon's namespace (e.g. QEMU's own tap), read with AF_PACKET")
    .action(async (name: string, o) => {
      const r = await client().request<{ Interface: string }>('POST', '/attachments', { name, network: o.network, tap: o.tap, qemuStream: o.qemuStream, qemuDgram: o.qemuDgram, iface: o.iface });
      process.stdout.write(r.Interface + '\n');
    });
  program
    .command('detach')
    .description('remove an attachment made by `usernet attach` (its TAP disappears, wherever it was moved)')
    .argument('<name>')
    .action(async (name: string) => {
      await client().request('DELETE', `/attachments/${encodeURIComponent(name)}`);
      process.stdout.write(name + '\n');
    });
  program
    .command('attachments')
    .description('list attachments (usernet attach)')
    .option('--json', 'machine-readable', false)
    .action(async (o) => {
      const r = await client().request<Array<{ Name: string; Network: string; Kind: string; Interface: string; Connected?: boolean }>>('GET', '/attachments');
      if (o.json) return print(r);
      const state = (a: { Connected?: boolean }) => (a.Connected === undefined ? '' : a.Connected ? ' (connected)' : ' (waiting)');
      process.stdout.write(['NAME\tNETWORK\tKIND\tINTERFACE', ...r.map((a) => `${a.Name}\t${a.Network}\t${a.Kind}\t${a.Interface}${state(a)}`)].join('\n') + '\n');
    });
  program
    .command('conntrack')
    .description('list tracked connections, like conntrack -L')
    .option('--json', 'machine-readable', false)
    .action(async (o) => {
      // streamed: a full table is 131072 lines; neither side holds it whole
      await pipeOut(await client().stream(`/conntrack${o.json ? '?format=json' : ''}`));
    });
  program
    .command('stats')
    .description('per-network and per-port counters')
    .option('--json', 'machine-readable', false)
    .action(async (o) => {
      const r = await client().request<{ table: string }>('GET', `/stats${o.json ? '' : '?format=table'}`);
      if (o.json) print(r);
      else process.stdout.write(r.table);
    });
  program
    .command('capture')
    .description('capture frames of a network or a container')
    .argument('<target>', 'network or container')
    .option('-w, --write <file>', 'write a pcap file (tcpdump -r reads it)')
    .option('-c, --count <n>', 'stop after N frames')
    .action(async (target: string, o) => {
      const count = o.count === undefined ? 0 : Number(o.count);
      if (!Number.isInteger(count) || count < 0) throw new Error(`invalid count "${o.count}"`);
      // the file first: a path that cannot be written is a one-line error before the daemon starts capturing
      const file = o.write ? await openCaptureFile(String(o.write)) : null;
      let res: Awaited<ReturnType<ReturnType<typeof client>['stream']>>;
      try {
        res = await client().stream(`/capture?target=${encodeURIComponent(target)}&count=${count}`);
      } catch (e) {
        await file?.close();
        throw e;
      }
      let writeError: Error | null = null;
      const out = file ? file.createWriteStream() : null;
      out?.on('error', (e) => {
        writeError ??= new Error(`cannot write ${o.write}: ${(e as NodeJS.ErrnoException).code ?? e.message}`);
        res.destroy();
      });
      const reader = out ? null : new PcapReader();
      const stop = () => res.destroy();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await new Promise<void>((resolve) => {
        res.on('data', (chunk: Buffer) => {
          if (out) out.write(chunk);
          else for (const f of reader!.push(chunk)) process.stdout.write(`${new Date(f.ts).toISOString().slice(11, 23)} ${describeFrame(f.data)}\n`);
        });
        res.on('end', resolve);
        res.on('close', resolve);
        res.on('error', () => resolve());
      });
      if (out) await new Promise<void>((r) => out.end(r));
      if (writeError) throw writeError;
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : 2;
    }
    const msg = (e as Error).message;
    const fromDaemon = (e as { status?: number }).status !== undefined;
    process.stderr.write(fromDaemon ? `Error response from daemon: ${msg}\n` : `usernet: ${msg}\n`);
    return 1;
  }
  return exitCode;
}
