/**
 * The CLI's way out: every byte written to stdout/stderr reaches the pipe
 * before the process exits, and a reader that goes away early
 * (`usernet conntrack | head -1`: EPIPE) ends the CLI quietly with status 0.
 *
 * Node writes to a pipe asynchronously: process.exit() right after a big
 * write cuts the output at what the pipe took (64 KiB). So bin/usernet ends
 * through exitAfterFlush(), which waits until both streams have handed all
 * they hold to the kernel; and long outputs go through writeOut(), which
 * waits for 'drain' when stdout is behind, so memory stays flat too.
 */
import { once } from 'node:events';
import type { Readable } from 'node:stream';

let guarded = false;

/** EPIPE on stdout: nobody reads any more; exit quietly (0). Another write error: say so, exit 1. */
export function guardStdout(): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    process.stderr.write(`usernet: cannot write output: ${e.message}\n`);
    process.exit(1);
  });
}

/** Resolves once `stream` has handed everything written before to the OS (or failed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  return new Promise<void>((resolve) => stream.write('', () => resolve()));
}

/** Exit with `code` once stdout and stderr are written out. */
export function exitAfterFlush(code: number): void {
  guardStdout();
  Promise.all([flushed(process.stdout), flushed(process.stderr)]).then(
    () => process.exit(code),
    () => process.exit(code),
  );
}

/** Write a chunk to stdout, waiting for 'drain' when it is behind. */
export async function writeOut(chunk: string | Buffer): Promise<void> {
  if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
}

/** Copy a stream (a daemon response) to stdout with backpressure. */
export async function pipeOut(src: Readable): Promise<void> {
  guardStdout();
  for await (const chunk of src) await writeOut(chunk as Buffer);
}
