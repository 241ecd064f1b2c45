/**
 * The native addon (native/usernet.cc, built by node-gyp from binding.gyp).
 *
 * Contract:
 * - bindPool() is called once with the FramePool's ArrayBuffer and its
 *   offsets/lengths arrays; the addon keeps raw pointers (and references so
 *   the GC keeps them alive). Every later call passes only integer handles.
 *   Never transfer (detach) a bound buffer. Calling it again rebinds.
 * - Handle arrays: readBatch/writeBatch take `handles` either as a
 *   Uint32Array (looked at on every call: fine for cold paths and tests) or
 *   as the id that bindHandles(arr) returned for it (the pointer is captured
 *   once: ~40 ns less per call; use it for every port's rx/tx arrays).
 *   unbindHandles(id) releases the array. Handles are checked against the
 *   pool's capacity (RangeError before any I/O).
 * - readBatch(fd, handles, count): handles[0..count) are free frames the
 *   caller owns. The addon reads one frame per read (readv(2)) into each in
 *   turn: offsets[h] = h*slotSize + headroom, lengths[h] = bytes read (at
 *   most slotSize − headroom). It stops at EAGAIN (or a 0-byte read) or
 *   after `count` frames and returns how many it filled. A frame longer than
 *   slotSize − headroom is dropped and counted in stats().oversized (a TAP
 *   would otherwise hand it over silently truncated); its slot is reused.
 *   Any other errno throws an Error whose `code` is the errno name (e.g.
 *   'EBADFD'; also `.errno`, `.syscall`), unless at least one frame was
 *   read, in which case it returns them and the error surfaces on the next
 *   call.
 * - writeBatch(fd, handles, count): writes each frame (offsets[h],
 *   lengths[h]) with one write(2), stops at EAGAIN. count < 65536. Returns
 *   consumed + 65536 * failed, where consumed counts frames written or
 *   failed with a hard error (those are not retried) and failed counts the
 *   hard errors (a TAP gives EIO while the link is down, EINVAL for frames
 *   shorter than 14 bytes). Frames not consumed (after EAGAIN) stay with the
 *   caller. The addon never frees frames: the caller does.
 * - pollStart(fd, cb) watches fd for readability with uv_poll on the main
 *   loop and calls cb() (no arguments) each time it is readable
 *   (level-triggered: again on the next loop turn while frames wait); also
 *   once on an error condition (the TAP's device was deleted): libuv then
 *   stops the watcher and the next readBatch throws (EBADFD). An exception
 *   thrown by cb goes to process 'uncaughtException'. Returns a watcher id
 *   for pollStop(id), which stops and releases it (callable from inside cb);
 *   a stopped watcher does not keep the process alive. One watcher per fd
 *   (a second pollStart on the same fd throws code 'EEXIST').
 * - openTap(name, opts) opens /dev/net/tun with IFF_TAP|IFF_NO_PI (plus
 *   IFF_VNET_HDR when opts.vnetHdr, with a 12-byte virtio-net header in
 *   front of every frame read or written: the header then sits at
 *   offsets[h]), non-blocking, close-on-exec; name may be '' or contain
 *   '%d' to let the kernel pick (≤ 15 bytes); returns the fd and the
 *   kernel's name for the device. close(fd) stops any watcher on fd and
 *   closes it (a TAP device that is not persistent disappears then).
 * - stats(): process-wide counters of the addon.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TapOptions {
  /** IFF_VNET_HDR: every frame starts with a 12-byte virtio-net header (offloads are a later issue; off by default) */
  vnetHdr?: boolean;
}

export interface NativeAddon {
  bindPool(buffer: ArrayBuffer, offsets: Uint32Array, lengths: Uint32Array, slotSize: number, headroom: number): void;
  openTap(name: string, opts?: TapOptions): { fd: number; name: string };
  /** Captures arr's data pointer once; pass the returned id as `handles`. */
  bindHandles(arr: Uint32Array): number;
  unbindHandles(id: number): void;
  readBatch(fd: number, handles: Uint32Array | number, count: number): number;
  writeBatch(fd: number, handles: Uint32Array | number, count: number): number;
  pollStart(fd: number, cb: () => void): number;
  pollStop(id: number): void;
  close(fd: number): void;
  /** oversized: frames dropped by readBatch for not fitting a slot; watchers: active pollStart watchers */
  stats(): { oversized: number; watchers: number };
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
