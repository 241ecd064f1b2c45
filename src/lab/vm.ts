/**
 * A real tiny VM for network tests: Debian's kernel and a busybox initramfs
 * built here, booted under QEMU (KVM when /dev/kvm can be opened read-write,
 * TCG otherwise) with the serial console collected as text.
 *
 * Assets come from scripts/vm-assets.sh (default folder .cache/vm, or
 * $USERNET_VM_DIR): the kernel image and its virtio-net modules unpacked
 * from the Debian .deb (nothing installed system-wide) and a static busybox.
 * QEMU itself is Debian's qemu-system-x86 (scripts/setup.sh).
 *
 * The guest's /init mounts proc/sys/dev, loads the modules, brings up eth0,
 * runs the test's shell snippet and powers off. It prints marker lines
 * `@@vm KEY VALUE…` on the console (see vmMarker); the snippet can add its
 * own with the shell function `mark KEY VALUE…`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT } from './lab.js';

export const QEMU = 'qemu-system-x86_64';
/** Prefix of the guest's marker lines on the console. */
export const VM_MARK = '@@vm';

/** Where scripts/vm-assets.sh puts (and vmSupport looks for) the kernel, modules and static busybox. */
export function vmAssetsDir(): string {
  return process.env.USERNET_VM_DIR || join(ROOT, '.cache', 'vm');
}

export interface VmAssets {
  dir: string;
  kernel: string;
  busybox: string;
  /** Module files in load order (empty when the NIC driver is built in). */
  modules: string[];
  kernelVersion: string;
}

/** The assets in `dir`, or a list of what is missing. */
export function vmAssets(dir = vmAssetsDir()): { assets?: VmAssets; missing: string[] } {
  const kernel = join(dir, 'vmlinuz');
  const busybox = join(dir, 'busybox');
  const order = join(dir, 'modules.order');
  const missing = [kernel, busybox, order].filter((f) => !existsSync(f));
  if (missing.length) return { missing };
  const modules = readFileSync(order, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((m) => join(dir, 'modules', `${m}.ko`));
  const gone = modules.filter((f) => !existsSync(f));
  if (gone.length) return { missing: gone };
  const kv = join(dir, 'kernel-version');
  return { assets: { dir, kernel, busybox, modules, kernelVersion: existsSync(kv) ? readFileSync(kv, 'utf8').trim() : '?' }, missing: [] };
}

function onPath(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    const f = join(d, cmd);
    try {
      if (statSync(f).isFile()) return f;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** True when /dev/kvm opens read-write (then QEMU gets `-accel kvm`). */
export function kvmUsable(): boolean {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

export type Accel = 'kvm' | 'tcg';

/**
 * Can this machine boot the test VM? QEMU on PATH, and the kernel, modules
 * and static busybox in `dir` (ensureVmAssets fetches them). `accel` is the
 * accelerator bootVm will try first.
 */
export function vmSupport(dir = vmAssetsDir()): { ok: boolean; why?: string; accel: Accel } {
  const accel: Accel = kvmUsable() ? 'kvm' : 'tcg';
  const why: string[] = [];
  if (!onPath(QEMU)) why.push(`${QEMU} not found (apt-get install --no-install-recommends qemu-system-x86; scripts/setup.sh)`);
  const { missing } = vmAssets(dir);
  if (missing.length) why.push(`VM assets missing: ${missing.join(', ')} (run scripts/vm-assets.sh ${dir})`);
  return why.length ? { ok: false, why: why.join('; '), accel } : { ok: true, accel };
}

/**
 * Run scripts/vm-assets.sh DIR when the assets are missing and this process
 * can (root, apt-get present): ~71 MB download, a few seconds. Never throws.
 */
export function ensureVmAssets(dir = vmAssetsDir(), timeoutMs = 300_000): { ok: boolean; log: string } {
  if (!vmAssets(dir).missing.length) return { ok: true, log: '' };
  if (process.getuid?.() !== 0 || !onPath('apt-get')) return { ok: false, log: 'not root or no apt-get: cannot fetch the VM assets' };
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'vm-assets.sh'), dir], { encoding: 'utf8', timeout: timeoutMs });
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
  return { ok: r.status === 0 && !vmAssets(dir).missing.length, log };
}

// ------------------------------------------------------------------ initramfs

interface CpioEntry {
  name: string;
  mode: number; // including the file type bits
  data?: Buffer;
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** A "newc" (SVR4, no CRC) cpio archive: what the kernel unpacks as an initramfs. */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    off += b.length;
  };
  const pad4 = () => {
    const n = (4 - (off % 4)) % 4;
    if (n) push(Buffer.alloc(n));
  };
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
  let ino = 1;
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 } as CpioEntry]) {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const isTrailer = e.name === 'TRAILER!!!';
    const fields = [
      isTrailer ? 0 : ino++, // ino
      e.mode,
      0, // uid
      0, // gid
      (e.mode & 0o170000) === S_IFDIR ? 2 : 1, // nlink
      0, // mtime (reproducible)
      data.length,
      0, // devmajor
      0, // devminor
      e.rdev?.[0] ?? 0,
      e.rdev?.[1] ?? 0,
      name.length,
      0, // check
    ];
    push(Buffer.from('070701' + fields.map(hex).join(''), 'ascii'));
    push(name);
    pad4();
    if (data.length) {
      push(data);
      pad4();
    }
  }
  return Buffer.concat(parts);
}

/** udhcpc's hook: sets the address, default route and /etc/resolv.conf, and prints a marker. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" \${broadcast:+broadcast "$broadcast"} dev "$interface"
    if [ -n "$router" ]; then
      while ip route del default 2>/dev/null; do :; done
      for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    fi
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "${VM_MARK} dhcp-$1 $ip/\${mask:-24} router=$router dns=$dns"
    ;;
esac
exit 0
`;

function initScript(moduleNames: string[]): string {
  return `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run
mark() { echo "${VM_MARK} $*"; }
mark boot uptime=$(cut -d' ' -f1 /proc/uptime)
for m in ${moduleNames.join(' ')}; do
  insmod /lib/modules/$m.ko || mark insmod-failed $m
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if ip link set eth0 up 2>/dev/null; then
  mark ready eth0=$(cat /sys/class/net/eth0/address) uptime=$(cut -d' ' -f1 /proc/uptime)
else
  mark ready eth0=none uptime=$(cut -d' ' -f1 /proc/uptime)
fi
( . /test.sh )
mark script-exit $? uptime=$(cut -d' ' -f1 /proc/uptime)
mark poweroff
sync
poweroff -f
`;
}

/** The applet paths of a busybox binary (`busybox --list-full`; a fallback list if it cannot run here). */
function applets(busybox: string): string[] {
  const r = spawnSync(busybox, ['--list-full'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  return 'bin/sh bin/ash bin/cat bin/echo bin/ls bin/mkdir bin/mount bin/ping bin/sleep bin/sync bin/ip sbin/insmod sbin/poweroff sbin/udhcpc usr/bin/nslookup usr/bin/cut usr/bin/wget usr/bin/nc'.split(' ');
}

/**
 * Build `DIR/initramfs.cpio.gz` (returns its path): busybox at /bin/busybox
 * with a symlink per applet, the NIC modules and their load order, a udhcpc
 * hook at /usr/share/udhcpc/default.script, /test.sh = `opts.script`, and
 * /init (see the file comment). The snippet runs in a subshell of /init with
 * `mark` defined, after eth0 is up (no address: run udhcpc yourself).
 */
export function buildInitramfs(dir: string, opts: { script: string; assetsDir?: string }): string {
  const { assets, missing } = vmAssets(opts.assetsDir ?? vmAssetsDir());
  if (!assets) throw new Error(`VM assets missing: ${missing.join(', ')} (run scripts/vm-assets.sh)`);
  const names = assets.modules.map((f) => f.replace(/^.*\//, '').replace(/\.ko$/, ''));
  const e: CpioEntry[] = [];
  const dirs = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'usr/share', 'usr/share/udhcpc', 'dev', 'proc', 'sys', 'etc', 'tmp', 'run', 'root', 'lib', 'lib/modules', 'var', 'var/run'];
  for (const d of dirs) e.push({ name: d, mode: S_IFDIR | 0o755 });
  e.push({ name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] });
  e.push({ name: 'dev/null', mode: S_IFCHR | 0o666, rdev: [1, 3] });
  e.push({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: readFileSync(assets.busybox) });
  const seen = new Set(['bin/busybox']);
  for (const a of applets(assets.busybox)) {
    if (seen.has(a) || a.split('/').length < 2) continue;
    seen.add(a);
    const depth = a.split('/').length - 1;
    e.push({ name: a, mode: S_IFLNK | 0o777, data: Buffer.from('../'.repeat(depth) + 'bin/busybox') });
  }
  for (const f of assets.modules) e.push({ name: `lib/modules/${f.replace(/^.*\//, '')}`, mode: S_IFREG | 0o644, data: readFileSync(f) });
  e.push({ name: 'usr/share/udhcpc/default.script', mode: S_IFREG | 0o755, data: Buffer.from(UDHCPC_SCRIPT) });
  e.push({ name: 'etc/resolv.conf', mode: S_IFREG | 0o644, data: Buffer.alloc(0) });
  e.push({ name: 'etc/hosts', mode: S_IFREG | 0o644, data: Buffer.from('127.0.0.1 localhost\n') });
  e.push({ name: 'etc/passwd', mode: S_IFREG | 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') });
  e.push({ name: 'etc/group', mode: S_IFREG | 0o644, data: Buffer.from('root:x:0:\n') });
  e.push({ name: 'test.sh', mode: S_IFREG | 0o755, data: Buffer.from(opts.script.endsWith('\n') ? opts.script : opts.script + '\n') });
  e.push({ name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(initScript(names)) });
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'initramfs.cpio.gz');
  writeFileSync(out, gzipSync(cpioNewc(e), { level: 6 }));
  return out;
}

// ------------------------------------------------------------------ boot

/**
 * QEMU args for one virtio NIC on a netdev backend, e.g.
 * `virtioNic('tap,ifname=tap0,script=no,downscript=no', '52:54:00:12:34:56')`
 * or `virtioNic('stream,addr.type=unix,addr.path=/run/x.sock', mac)`.
 * `romfile=` because Debian's qemu-system-x86 without recommends has no iPXE ROMs.
 */
export function virtioNic(netdev: string, mac: string, id = 'n0'): string[] {
  return ['-netdev', `${netdev},id=${id}`, '-device', `virtio-net-pci,netdev=${id},mac=${mac},romfile=`];
}

export interface BootOptions {
  kernel: string;
  initrd: string;
  /** The NIC args: `-netdev … -device virtio-net-pci,…` (see virtioNic). */
  netdev: string[];
  memMb?: number;
  timeoutMs: number;
  /** Each console line (no CR/LF) as it arrives. */
  onLine?: (line: string) => void;
  /** Run QEMU inside this network namespace (`ip netns exec NS`), e.g. for a TAP there. */
  netns?: string;
  /**
   * Force an accelerator (also $USERNET_VM_ACCEL=kvm|tcg). Default: kvm when
   * /dev/kvm opens read-write, falling back to tcg (for this and later boots
   * in the process) when QEMU refuses KVM or the guest shows nothing within 15 s.
   */
  accel?: Accel;
  /** Extra kernel command line. */
  append?: string;
}

export interface BootResult {
  /** QEMU's exit code (0 after the guest's poweroff), null when killed. */
  code: number | null;
  /** Serial console output, CRs removed. */
  console: string;
  /** QEMU's stderr. */
  stderr: string;
  timedOut: boolean;
  /** The accelerator the guest ran under (tcg after a kvm fallback). */
  accel: Accel;
  /** Wall time from spawning QEMU to its exit (including a failed KVM try). */
  ms: number;
}

/** QEMU processes still running (pid → child): killVms() stops them. */
const live = new Map<number, ChildProcess>();

/** SIGKILL every QEMU this module started that is still running (for afterAll). */
export function killVms(): void {
  for (const [pid] of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}
process.on('exit', killVms);

/** Set once a KVM boot stalled or failed in this process: later boots go straight to TCG. */
let kvmBroken = false;
/** How long a KVM guest gets to reach /init before it is taken for stalled (nested KVM that opens but hangs). */
const KVM_STALL_MS = 15_000;

function bootOnce(o: BootOptions, accel: Accel, stallMs?: number): Promise<BootResult & { stalled: boolean }> {
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-accel',
    accel,
    ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-smp',
    '1',
    '-m',
    String(o.memMb ?? 256),
    '-kernel',
    o.kernel,
    '-initrd',
    o.initrd,
    '-append',
    `console=ttyS0 quiet panic=-1${o.append ? ' ' + o.append : ''}`,
    ...o.netdev,
  ];
  const [cmd, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, QEMU, ...args]] : [QEMU, args];
  const t0 = Date.now();
  // `ip netns exec` execs QEMU in place, so the pid is QEMU's
  const p = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  if (p.pid) live.set(p.pid, p);
  let consoleText = '';
  let stderr = '';
  let partial = '';
  p.stdout!.on('data', (d: Buffer) => {
    const s = d.toString('utf8').replace(/\r/g, '');
    consoleText += s;
    if (!o.onLine) return;
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) o.onLine(l);
  });
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    let timedOut = false;
    let stalled = false;
    const kill = () => {
      if (!p.pid) return;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, o.timeoutMs);
    const stallTimer =
      stallMs === undefined
        ? undefined
        : setTimeout(() => {
            if (consoleText.includes(VM_MARK)) return;
            stalled = true;
            kill();
          }, stallMs);
    const done = (code: number | null) => {
      clearTimeout(timer);
      clearTimeout(stallTimer);
      if (p.pid) live.delete(p.pid);
      if (partial && o.onLine) o.onLine(partial);
      resolve({ code, console: consoleText, stderr, timedOut, stalled, accel, ms: Date.now() - t0 });
    };
    p.on('error', (err) => {
      stderr += String(err);
      done(null);
    });
    p.on('close', (code) => done(code));
  });
}

/**
 * Boot the VM and resolve when QEMU exits (the guest powered off, or
 * panicked: `panic=-1` + `-no-reboot`) or after `timeoutMs` (QEMU is then
 * killed by its pid and `timedOut` is set). Never rejects.
 */
export async function bootVm(o: BootOptions): Promise<BootResult> {
  const env = process.env.USERNET_VM_ACCEL;
  const forced = o.accel ?? (env === 'kvm' || env === 'tcg' ? env : undefined);
  const accel: Accel = forced ?? (!kvmBroken && kvmUsable() ? 'kvm' : 'tcg');
  const stallMs = !forced && accel === 'kvm' ? Math.min(KVM_STALL_MS, o.timeoutMs) : undefined;
  const { stalled, ...r } = await bootOnce(o, accel, stallMs);
  // /dev/kvm opened but KVM does not work (QEMU refuses it, or the guest never reaches
  // /init, as under some nested hypervisors): remember that and boot under TCG instead
  const kvmFailed = stalled || (!r.timedOut && r.code !== 0 && !r.console.includes(VM_MARK) && /kvm/i.test(r.stderr));
  if (stallMs !== undefined && kvmFailed && o.timeoutMs - r.ms > 1000) {
    kvmBroken = true;
    const why = stalled ? `no ${VM_MARK} line within ${stallMs} ms` : r.stderr.trim();
    const { stalled: _s, ...t } = await bootOnce({ ...o, timeoutMs: o.timeoutMs - r.ms }, 'tcg');
    return { ...t, stderr: `(kvm failed, fell back to tcg: ${why})\n${t.stderr}`, ms: t.ms + r.ms };
  }
  return r;
}

/** The values of every `@@vm KEY …` line on the console, in order. */
export function vmMarkers(consoleText: string, key: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`${VM_MARK} ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?: (.*))?$`);
  for (const line of consoleText.split('\n')) {
    const m = re.exec(line);
    if (m) out.push((m[1] ?? '').trim());
  }
  return out;
}

/** The value of the last `@@vm KEY …` line, or undefined. */
export function vmMarker(consoleText: string, key: string): string | undefined {
  return vmMarkers(consoleText, key).at(-1);
}
