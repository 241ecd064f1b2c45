/**
 * Namespaces and links, through iproute2 (cold path: container set-up and
 * teardown only). Every call names the namespace explicitly; nothing here
 * touches an interface usernet did not create.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class CommandError extends Error {}

async function sh(cmd: string, args: string[], input?: string): Promise<string> {
  try {
    if (input !== undefined) {
      return await new Promise<string>((resolve, reject) => {
        const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
          if (err) reject(new CommandError(`${cmd} ${args.join(' ')}: ${String(stderr || err.message).trim()}`));
          else resolve(stdout);
        });
        child.stdin!.end(input);
      });
    }
    const { stdout } = await run(cmd, args, { timeout: 20_000 });
    return stdout;
  } catch (e) {
    if (e instanceof CommandError) throw e;
    const err = e as { stderr?: string; message: string };
    throw new CommandError(`${cmd} ${args.join(' ')}: ${String(err.stderr || err.message).trim()}`);
  }
}

export async function listNetns(): Promise<string[]> {
  const out = await sh('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
}

export async function netnsExists(name: string): Promise<boolean> {
  return (await listNetns()).includes(name);
}

/** A fresh namespace with lo up and IPv6 off (usernet networks are IPv4 only for now). */
export async function createNetns(name: string): Promise<void> {
  await sh('ip', ['netns', 'add', name]);
  try {
    await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  } catch (e) {
    await deleteNetns(name).catch(() => undefined);
    throw e;
  }
}

export async function deleteNetns(name: string): Promise<void> {
  await sh('ip', ['netns', 'del', name]);
}

export interface EndpointConfig {
  /** the TAP's name in the daemon's namespace */
  tap: string;
  /** name inside the container (eth0, eth1, …) */
  ifname: string;
  mac: string;
  mtu: number;
  /** a.b.c.d/len */
  cidr: string;
}

/** Move a TAP into the container namespace and configure it as ethN. */
export async function plugEndpoint(netns: string, ep: EndpointConfig): Promise<void> {
  await sh('ip', ['link', 'set', 'dev', ep.tap, 'netns', netns]);
  const batch = [
    `link set dev ${ep.tap} name ${ep.ifname}`,
    `link set dev ${ep.ifname} address ${ep.mac} mtu ${ep.mtu}`,
    `addr add ${ep.cidr} dev ${ep.ifname}`,
    `link set dev ${ep.ifname} up`,
  ].join('\n');
  await sh('ip', ['-n', netns, '-batch', '-'], batch + '\n');
}

/** Point the container's default route at `gateway` via `ifname` (or remove it when gateway is null). */
export async function setDefaultRoute(netns: string, gateway: string | null, ifname?: string): Promise<void> {
  if (gateway === null) {
    await sh('ip', ['-n', netns, 'route', 'del', 'default']).catch(() => undefined);
    return;
  }
  await sh('ip', ['-n', netns, 'route', 'replace', 'default', 'via', gateway, 'dev', ifname!]);
}

/** The host link's kernel side, in the daemon's own namespace: address and up. */
export async function configureHostLink(ifname: string, cidr: string): Promise<void> {
  await sh('ip', ['-batch', '-'], `addr add ${cidr} dev ${ifname}\nlink set dev ${ifname} up\n`);
}

/** A route in the daemon's namespace (to a network's subnet through the host link). */
export async function setRoute(subnet: string, via: string, dev: string): Promise<void> {
  await sh('ip', ['route', 'replace', subnet, 'via', via, 'dev', dev]);
}

export async function deleteRoute(subnet: string): Promise<void> {
  await sh('ip', ['route', 'del', subnet]);
}

/**
 * Inside a container namespace: queries to 127.0.0.11:53 (UDP and TCP) go to
 * the embedded resolver's port (the kernel's conntrack turns the replies'
 * source port back into 53), the way Docker's embedded DNS is reached.
 */
export async function redirectDns(netns: string, port: number): Promise<void> {
  const rules = [
    'table ip usernet_dns {',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    `    ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:${port}`,
    `    ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:${port}`,
    '  }',
    '}',
  ].join('\n');
  await sh('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], rules + '\n');
}

/** Whether an interface of that name exists in the daemon's own namespace. */
export async function linkExists(ifname: string): Promise<boolean> {
  try {
    await run('ip', ['-o', 'link', 'show', 'dev', ifname], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

