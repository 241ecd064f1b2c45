/**
 * TapDevice — a Port backed by a TAP file descriptor held by the daemon.
 *
 * Opens the TAP (openTap: name may be '' or contain '%d'; `ifname` is the
 * kernel's name for it); everything else — batched pull/push, readiness,
 * counters (rx = frames read from the TAP: the container sent them, tx =
 * frames written to it), `captureSink` — is FdDevice's. close() closes the
 * fd, and a non-persistent TAP disappears with it.
 *
 * opts.offload: IFF_VNET_HDR + TSO/checksum offload (see native.ts): the
 * container's kernel hands over super-frames and partial checksums, and
 * takes super-frames whole. Without it, super-frames are segmented before
 * they are written. `offloads` holds the TUN_F_* bits the kernel accepted.
 */
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { FdDevice } from './fd-device.js';
import type { NativeAddon, TapOptions } from './native.js';

export class TapDevice extends FdDevice {
  readonly ifname: string;
  readonly offloads: number;

  constructor(native: NativeAddon, pool: FramePool, port: Port, name: string, opts: TapOptions = {}, batch = 64) {
    const t = native.openTap(name, opts);
    const offload = opts.offload === true;
    super(native, pool, port, t.fd, batch, { superFrames: offload, takesGso: offload });
    this.ifname = t.name;
    this.offloads = t.offloads ?? 0;
  }
}
