/**
 * The native addon (native/usernet.cc, built by node-gyp from binding.gyp).
 *
 * Contract:
 * - bindPool() is called once with the FramePool's ArrayBuffer and its
 *   offsets/lengths arrays; the addon keeps raw pointers (and references so
 *   the GC keeps them alive). Every later call passes only integer handles.
 * - readBatch(fd, handles, count): handles[0..count) are free frames the
 *   caller owns. The addon reads one frame per read(2) into each in turn:
 *   offsets[h] = h*slotSize + headroom, lengths[h] = bytes read (at most
 *   slotSize − headroom). It stops at EAGAIN or after `count` frames and
 *   returns how many it filled. Any other errno throws an Error whose
 *   `code` is the errno name (e.g. 'EBADFD'), unless at least one frame was
 *   read, in which case it returns them and the error surfaces on the next
 *   call.
 * - writeBatch(fd, handles, count): writes each frame with one write(2),
 *   stops at EAGAIN. Returns consumed + 65536 * failed, where consumed counts
 *   frames written or failed with a hard error (those are not retried) and
 *   failed counts the hard errors. Frames not consumed (after EAGAIN) stay
 *   with the caller. The addon never frees frames: the caller does.
 * - pollStart(fd, cb) watches fd for readability with uv_poll on the main
 *   loop and calls cb() (no arguments) each time it is readable; returns a
 *   watcher id for pollStop(id). pollStop stops and releases it.
 * - openTap(name, opts) opens /dev/net/tun with IFF_TAP|IFF_NO_PI (plus
 *   IFF_VNET_HDR when opts.vnetHdr), non-blocking, close-on-exec; returns the
 *   fd and the kernel's name for the device. close(fd) closes it (a TAP
 *   device that is not persistent disappears then).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TapOptions {
  /** IFF_VNET_HDR: frames carry a virtio-net header (later issue; off by default) */
  vnetHdr?: boolean;
}

export interface NativeAddon {
  bindPool(buffer: ArrayBuffer, offsets: Uint32Array, lengths: Uint32Array, slotSize: number, headroom: number): void;
  openTap(name: string, opts?: TapOptions): { fd: number; name: string };
  readBatch(fd: number, handles: Uint32Array, count: number): number;
  writeBatch(fd: number, handles: Uint32Array, count: number): number;
  pollStart(fd: number, cb: () => void): number;
  pollStop(id: number): void;
  close(fd: number): void;
}

let cached: NativeAddon | null = null;

/** Loads build/Release/usernet.node (found from this file's location upwards). */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'build', 'Release', 'usernet.node');
    if (existsSync(candidate)) {
      const require = createRequire(import.meta.url);
      cached = require(candidate) as NativeAddon;
      return cached;
    }
    dir = dirname(dir);
  }
  throw new Error('native addon not built: run `npm run build` (node-gyp) first');
}
