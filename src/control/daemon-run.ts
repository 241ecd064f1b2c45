/**
 * `usernet daemon` as a process: the options checked before anything is
 * touched, the state directory locked, start-up (a failed one removes what
 * it made), and the signals — SIGTERM/SIGINT stop the daemon, one arriving
 * during start-up is held until start-up ends. Uncaught exceptions are
 * logged, never fatal: a crash would leave every container without its
 * interfaces and the namespaces behind.
 */
import pino from 'pino';
import { Daemon, type DaemonOptions } from './daemon.js';
import { StateDirLock } from './state-dir.js';
import { parseUplink } from './uplink.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NETNS_PREFIX = /^[a-zA-Z0-9_.-]{0,64}$/;

/** The daemon's options that can be checked before anything is touched: a one-line reason, or null. */
export function checkDaemonOptions(opts: DaemonOptions): string | null {
  if (!LOG_LEVELS.includes(opts.logLevel)) return `invalid --log-level "${opts.logLevel}": one of ${LOG_LEVELS.join(', ')}`;
  if (!NETNS_PREFIX.test(opts.netnsPrefix)) return `invalid --netns-prefix "${opts.netnsPrefix}": at most 64 characters [a-zA-Z0-9_.-]`;
  if (opts.uplink) {
    try {
      parseUplink(opts.uplink);
    } catch (e) {
      return (e as Error).message;
    }
  }
  return null;
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  if (process.getuid && process.getuid() !== 0) {
    process.stderr.write('usernet: the daemon must run as root (it creates TAP devices and namespaces)\n');
    return 1;
  }
  const bad = checkDaemonOptions(opts);
  if (bad) {
    process.stderr.write(`usernet: ${bad}\n`);
    return 1;
  }
  let lock: StateDirLock;
  try {
    lock = StateDirLock.acquire(opts.stateDir);
  } catch (e) {
    process.stderr.write(`usernet: ${(e as Error).message}\n`);
    return 1;
  }
  const log = pino({ level: opts.logLevel, base: { pid: process.pid } }, pino.destination(2));
  // a bug in a callback (an event handler, a timer) must not take the lab down: every container would
  // lose its interfaces and the namespaces would stay behind. Log it with its stack and keep serving.
  process.on('uncaughtException', (e) => log.error({ err: e instanceof Error ? e.stack : String(e) }, 'uncaught exception (the daemon keeps running)'));
  process.on('unhandledRejection', (e) => log.error({ err: e instanceof Error ? e.stack : String(e) }, 'unhandled rejection (the daemon keeps running)'));
  // a signal during start-up is held until start-up ends, so that what it made is removed again
  let signalled: string | null = null;
  let onSignal: (sig: string) => void = (sig) => void (signalled ??= sig);
  const handler = (sig: NodeJS.Signals) => onSignal(sig);
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  let d: Daemon | null = null;
  try {
    d = new Daemon(opts, log);
    await d.start();
  } catch (e) {
    process.stderr.write(`usernet: ${(e as Error).message}\n`);
    await d?.overlay?.close().catch(() => undefined);
    await d?.runtime.shutdown().catch(() => undefined);
    lock.release(true); // a state directory this start made goes again
    return 1;
  }
  const daemon = d;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'stopping');
      daemon.stop().then(
        () => {
          lock.release();
          resolve(0);
        },
        (e) => {
          log.error({ err: (e as Error).message }, 'stop failed');
          lock.release();
          resolve(1);
        },
      );
    };
    onSignal = stop;
    if (signalled) stop(signalled);
  });
}
