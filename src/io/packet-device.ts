/**
 * PacketDevice — a Port backed by an AF_PACKET socket on an existing
 * Ethernet interface (a veth end, a NIC): the switch or router sees what
 * arrives on the interface and sends frames out through it.
 *
 * Opens the socket with openPacket (see src/io/native.ts for what a packet
 * socket reads and writes: only frames arriving on the interface, never the
 * ones sent through it; VLAN tags and offloaded checksums restored). With
 * offloads (the default) GRO'd super-frames are read whole into large slots
 * and super-frames are sent whole (the kernel segments them for the
 * interface: PACKET_VNET_HDR); with `offload: false` super-frames that
 * arrive are dropped as oversized and the dataplane segments what it sends.
 * `mac` is the interface's MAC (48-bit
 * number), `ifindex` its index. opts.netns opens the socket in another
 * network namespace; opts.promisc asks for frames to every MAC.
 *
 * Everything else — batched pull/push (recvmmsg/sendmmsg under the hood),
 * readiness, counters (rx = frames that arrived on the interface, tx =
 * frames sent out through it), `captureSink` — is FdDevice's. When the link
 * goes down a read fails once with ENETDOWN (counted in readErrors) and the
 * device goes on: frames flow again once the link is back up. close()
 * closes the socket; the interface stays.
 */
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { FdDevice } from './fd-device.js';
import type { NativeAddon, PacketOptions } from './native.js';

export interface PacketDeviceOptions extends PacketOptions {
  /** read and send super-frames (default true) */
  offload?: boolean;
}

export class PacketDevice extends FdDevice {
  readonly ifname: string;
  readonly ifindex: number;
  /** the interface's MAC as a 48-bit number */
  readonly mac: number;

  constructor(native: NativeAddon, pool: FramePool, port: Port, ifname: string, opts: PacketDeviceOptions = {}, batch = 64) {
    const s = native.openPacket(ifname, { netns: opts.netns, promisc: opts.promisc });
    const offload = opts.offload !== false;
    super(native, pool, port, s.fd, batch, { superFrames: offload, takesGso: offload });
    this.ifname = ifname;
    this.ifindex = s.ifindex;
    this.mac = s.mac;
  }
}
