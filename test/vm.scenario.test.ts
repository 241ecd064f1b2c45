/**
 * Real VMs on usernet networks: QEMU (software emulation; KVM when it works)
 * boots a Debian kernel with a busybox initramfs built by the test, attached
 * with `usernet attach --qemu-stream`, `--qemu-dgram` and `--iface` (QEMU's
 * own tap in the daemon's namespace). Each VM gets its address by DHCP from
 * usernet, resolves a container's name through usernet and pings it.
 * Generous time limits; says clearly when it cannot run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootVm, buildInitramfs, ensureVmAssets, killVms, virtioNic, vmAssets, vmMarker, vmSupport } from '../src/lab/vm.js';
import { DaemonUnderTest, isRoot } from './harness.js';

const WHAT = 'VM scenario tests (QEMU + busybox initramfs attached to usernet)';
function support(): { ok: boolean; why?: string } {
  if (!isRoot) return { ok: false, why: 'needs root' };
  let s = vmSupport();
  if (!s.ok && vmAssets().missing.length) {
    ensureVmAssets();
    s = vmSupport();
  }
  return s;
}
const sup = support();
if (!sup.ok) console.warn(`\n*** SKIPPED: ${WHAT} — ${sup.why} ***\n`);

describe.runIf(sup.ok)('VMs attached to a usernet network', () => {
  const d = new DaemonUnderTest('vm');
  const tmp = mkdtempSync(join(tmpdir(), 'usernet-vmt-'));
  let web = '';
  const script = `
udhcpc -i eth0 -n -q -t 10 -T 2 -s /usr/share/udhcpc/default.script || mark dhcp-failed
mark addr $(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \\([0-9./]*\\) .*/\\1/p')
mark route $(ip -4 route show default)
mark resolv $(grep nameserver /etc/resolv.conf)
ping -c 3 -W 2 web > /tmp/ping.txt 2>&1
rc=$?
cat /tmp/ping.txt
mark pinged $(head -1 /tmp/ping.txt)
mark ping rc=$rc $(grep 'packet loss' /tmp/ping.txt)
`;
  let initrd = '';

  beforeAll(async () => {
    await d.start();
    d.ok('network', 'create', '--subnet', '10.70.0.0/24', 'lan');
    d.ok('run', '--name', 'web', '--network', 'lan');
    web = JSON.parse(d.ok('inspect', 'web'))[0].NetworkSettings.Networks.lan.IPAddress;
    initrd = buildInitramfs(tmp, { script });
  }, 60_000);

  afterAll(async () => {
    killVms();
    await d.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  async function boot(netdev: string, mac: string, netns?: string) {
    const r = await bootVm({ kernel: vmAssets().assets!.kernel, initrd, netdev: virtioNic(netdev, mac), netns, timeoutMs: 150_000 });
    const why = `console:\n${r.console}\nqemu stderr:\n${r.stderr}\ndaemon:\n${d.log.slice(-2000)}`;
    return { r, why };
  }

  function expectOnline(c: string, why: string): void {
    const addr = vmMarker(c, 'addr') ?? '';
    expect(addr, why).toMatch(/^10\.70\.0\.(12[89]|1[3-9]\d|2[0-4]\d|25[0-4])\/24$/); // the upper half: DHCP's range
    expect(vmMarker(c, 'route'), why).toMatch(/via 10\.70\.0\.1/);
    expect(vmMarker(c, 'resolv'), why).toMatch(/10\.70\.0\.1/);
    expect(vmMarker(c, 'pinged'), why).toContain(web); // "web" resolved through usernet
    expect(vmMarker(c, 'ping'), why).toMatch(/rc=0 .*0% packet loss/);
  }

  it('--qemu-stream: the VM gets an address by DHCP and pings a container by name', async () => {
    const sock = join(d.dir, 'vm1.sock');
    d.ok('attach', 'vm1', '--network', 'lan', '--qemu-stream', sock);
    expect(JSON.parse(d.ok('attachments', '--json'))).toMatchObject([{ Name: 'vm1', Kind: 'qemu-stream', Interface: sock, Connected: false }]);
    const { r, why } = await boot(`stream,addr.type=unix,addr.path=${sock}`, '52:54:00:70:00:01');
    expectOnline(r.console, why);
    d.ok('detach', 'vm1');
  }, 180_000);

  it('--qemu-dgram: the same over unix datagram sockets', async () => {
    const sock = join(d.dir, 'vm2.sock');
    d.ok('attach', 'vm2', '--network', 'lan', '--qemu-dgram', sock);
    const { r, why } = await boot(`dgram,local.type=unix,local.path=${sock}.vm,remote.type=unix,remote.path=${sock}`, '52:54:00:70:00:02');
    expectOnline(r.console, why);
    d.ok('detach', 'vm2');
  }, 180_000);

  it("--iface: QEMU's own tap in the daemon's namespace, read with AF_PACKET", async () => {
    execFileSync('ip', ['-n', d.hostNs, 'tuntap', 'add', 'vmtap0', 'mode', 'tap']);
    execFileSync('ip', ['-n', d.hostNs, 'link', 'set', 'vmtap0', 'up']);
    d.ok('attach', 'vm3', '--network', 'lan', '--iface', 'vmtap0');
    const { r, why } = await boot('tap,ifname=vmtap0,script=no,downscript=no', '52:54:00:70:00:03', d.hostNs);
    expectOnline(r.console, why);
    d.ok('detach', 'vm3');
  }, 180_000);

  it('bad attach input changes nothing', () => {
    expect(d.cli('attach', 'x1', '--network', 'lan').stderr).toMatch(/exactly one of/);
    expect(d.cli('attach', 'x1', '--network', 'lan', '--qemu-stream', 'relative.sock').stderr).toMatch(/absolute path/);
    expect(d.cli('attach', 'x1', '--network', 'lan', '--iface', 'nope0').stderr).toMatch(/does not exist/);
    expect(d.cli('attach', 'x1', '--network', 'nonet', '--qemu-stream', join(d.dir, 'x.sock')).stderr).toMatch(/network nonet not found|No such network/i);
    expect(JSON.parse(d.ok('attachments', '--json'))).toEqual([]);
  });
});
