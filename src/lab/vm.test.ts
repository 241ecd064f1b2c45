/**
 * Self-check of the VM harness (src/lab/vm.ts), no usernet involved: in a
 * fresh namespace, a kernel bridge with a TAP that QEMU opens
 * (`-netdev tap`), busybox udhcpd on the bridge address, and a VM (Debian
 * kernel + a busybox initramfs built here) that asks for an address with
 * udhcpc and pings the bridge 3 times. Needs root, qemu-system-x86 and the
 * assets of scripts/vm-assets.sh (fetched here when missing: ~71 MB via
 * apt-get download). Under TCG the boot takes seconds; the limit is generous.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot, listNetns, uniquePrefix } from './lab.js';
import { ip } from './ns-kit.js';
import { bootVm, buildInitramfs, ensureVmAssets, killVms, virtioNic, vmAssets, vmAssetsDir, vmMarker, vmSupport } from './vm.js';

const WHAT = 'src/lab/vm.test.ts (QEMU VM with a busybox initramfs: DHCP over a TAP on a bridge, ping)';

function support(): { ok: boolean; why?: string } {
  if (!isRoot) return { ok: false, why: 'needs root (namespaces, TAP, bridge)' };
  let s = vmSupport();
  if (!s.ok && vmAssets().missing.length) {
    const got = ensureVmAssets();
    s = vmSupport();
    if (!s.ok && !got.ok) return { ok: false, why: `${s.why}; scripts/vm-assets.sh failed: ${got.log.trim().split('\n').slice(-3).join(' | ')}` };
  }
  return s;
}
const sup = support();
if (!sup.ok) console.warn(`\n*** SKIPPED: ${WHAT} — ${sup.why} ***\n`);

describe.runIf(sup.ok)('VM harness', () => {
  const prefix = uniquePrefix('vm');
  const ns = `${prefix}ns`;
  const tmp = mkdtempSync(join(tmpdir(), 'usernet-vm-'));
  const children: ChildProcess[] = [];

  afterAll(() => {
    killVms();
    for (const c of children) {
      if (c.pid && c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const n of listNetns().filter((x) => x.startsWith(prefix))) spawnSync('ip', ['netns', 'del', n]);
    rmSync(tmp, { recursive: true, force: true });
    expect(listNetns().filter((x) => x.startsWith(prefix))).toEqual([]);
  });

  it('boots, gets an address from udhcpd over a TAP on a bridge, and pings the bridge with 0% loss', async () => {
    // the namespace: br0 10.213.7.1/24 with tap0 as a port; IPv6 off so nothing else talks
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0');
    ip('-n', ns, 'addr', 'add', '10.213.7.1/24', 'dev', 'br0');
    ip('-n', ns, 'link', 'set', 'br0', 'up');
    ip('-n', ns, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap');
    ip('-n', ns, 'link', 'set', 'tap0', 'master', 'br0');
    ip('-n', ns, 'link', 'set', 'tap0', 'up');

    // busybox udhcpd on br0 (the assets' static busybox has the applet)
    const conf = join(tmp, 'udhcpd.conf');
    writeFileSync(join(tmp, 'udhcpd.leases'), '');
    writeFileSync(
      conf,
      [
        'start 10.213.7.100',
        'end 10.213.7.120',
        'interface br0',
        'max_leases 21',
        `lease_file ${join(tmp, 'udhcpd.leases')}`,
        `pidfile ${join(tmp, 'udhcpd.pid')}`,
        'opt subnet 255.255.255.0',
        'opt router 10.213.7.1',
        'opt dns 10.213.7.1',
        'opt lease 600',
        '',
      ].join('\n'),
    );
    const assets = vmAssets().assets!;
    const udhcpd = spawn('ip', ['netns', 'exec', ns, assets.busybox, 'udhcpd', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(udhcpd);
    let udhcpdLog = '';
    udhcpd.stdout!.on('data', (d: Buffer) => (udhcpdLog += d.toString()));
    udhcpd.stderr!.on('data', (d: Buffer) => (udhcpdLog += d.toString()));

    const script = `
udhcpc -i eth0 -n -q -t 10 -T 2 -s /usr/share/udhcpc/default.script || mark dhcp-failed
mark addr $(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \\([0-9./]*\\) .*/\\1/p')
mark route $(ip -4 route show default)
mark resolv $(cat /etc/resolv.conf)
ping -c 3 -W 2 10.213.7.1 > /tmp/ping.txt 2>&1
rc=$?
cat /tmp/ping.txt
mark ping rc=$rc $(grep 'packet loss' /tmp/ping.txt)
`;
    const initrd = buildInitramfs(tmp, { script });
    const mac = '52:54:00:' + [0, 0, 0].map(() => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join(':');
    const t0 = Date.now();
    const at: Record<string, number> = {};
    const r = await bootVm({
      kernel: assets.kernel,
      initrd,
      netdev: virtioNic('tap,ifname=tap0,script=no,downscript=no', mac),
      netns: ns,
      timeoutMs: 150_000,
      onLine: (l) => {
        const m = /@@vm (\S+)/.exec(l);
        if (m && at[m[1]] === undefined) at[m[1]] = Date.now() - t0;
      },
    });
    const why = `console:\n${r.console}\nqemu stderr:\n${r.stderr}\nudhcpd:\n${udhcpdLog}`;
    console.log(
      `VM under ${r.accel} (kernel ${assets.kernelVersion}): QEMU exit ${r.code} after ${r.ms} ms; ` +
        `from spawn: /init ${at.boot} ms, eth0 up ${at.ready} ms, DHCP lease ${at['dhcp-bound']} ms, ping done ${at.ping} ms` +
        (r.stderr.includes('fell back') ? ` [${r.stderr.split('\n')[0]}]` : ''),
    );

    expect(r.timedOut, why).toBe(false);
    expect(r.code, why).toBe(0);
    expect(vmMarker(r.console, 'ready'), why).toBe(`eth0=${mac} uptime=${vmMarker(r.console, 'ready')!.split('uptime=')[1]}`);
    expect(vmMarker(r.console, 'dhcp-failed'), why).toBeUndefined();
    const addr = vmMarker(r.console, 'addr') ?? '';
    const m = /^10\.213\.7\.(\d+)\/24$/.exec(addr);
    expect(m, why).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(100);
    expect(Number(m![1])).toBeLessThanOrEqual(120);
    expect(vmMarker(r.console, 'route'), why).toMatch(/^default via 10\.213\.7\.1 dev eth0/);
    expect(vmMarker(r.console, 'resolv'), why).toBe('nameserver 10.213.7.1');
    const ping = vmMarker(r.console, 'ping') ?? '';
    expect(ping, why).toMatch(/^rc=0 3 packets transmitted, 3 packets received, 0% packet loss$/);
    expect(vmMarker(r.console, 'script-exit'), why).toMatch(/^0 /);
    expect(vmMarker(r.console, 'poweroff'), why).toBe('');
  }, 180_000);

  it('vmSupport names the assets folder it checks', () => {
    expect(vmSupport(join(tmp, 'nothing-here')).why).toContain('scripts/vm-assets.sh');
    expect(vmAssetsDir()).toMatch(/vm$/);
  });
});
