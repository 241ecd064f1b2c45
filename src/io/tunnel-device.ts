/**
 * TunnelDevice — a Port backed by a UDP tunnel endpoint (the VXLAN
 * underlay): datagrams to ip:udpPort come in, whole IPv4 packets go out.
 *
 * Opens the endpoint with openTunnel (see src/io/native.ts): a UDP socket
 * bound to ip:udpPort that receives, paired with a raw IPv4 socket that
 * sends. opts.netns opens both in another network namespace. A frame pulled
 * from it is the UDP payload of one datagram (no IP/UDP header), with the
 * sender's address in the headroom just in front of it: senderOf(pool, h)
 * and senderPortOf(pool, h) read it (valid until the frame's offset moves).
 * A frame pushed to it must be a complete IPv4 packet (IPv4 + UDP +
 * payload, built by the caller — encapsulation prepends the headers in the
 * headroom); it goes to the destination address in its IPv4 header, the
 * kernel filling in the header checksum, total length and a zero source
 * address; the UDP checksum is the caller's (or 0). No fragmentation: a
 * packet longer than the interface's MTU is refused.
 *
 * Everything else — batched pull/push (recvmmsg/sendmmsg under the hood),
 * readiness, counters (rx = datagrams received, rxBytes their payload
 * bytes; tx = packets sent, txBytes their full IPv4 length; a refused
 * packet is a txError drop), `captureSink` — is FdDevice's. close() closes
 * both sockets.
 */
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { FdDevice } from './fd-device.js';
import type { NativeAddon, TunnelOptions } from './native.js';

export class TunnelDevice extends FdDevice {
  /** the address the UDP socket is bound to ('0.0.0.0': every local address) */
  readonly ip: string;
  /** the bound UDP port (the kernel's pick when 0 was asked for) */
  readonly udpPort: number;

  constructor(
    native: NativeAddon,
    pool: FramePool,
    port: Port,
    ip: string,
    udpPort: number,
    opts: TunnelOptions = {},
    batch = 64,
  ) {
    const t = native.openTunnel(ip, udpPort, opts);
    super(native, pool, port, t.fd, batch);
    this.ip = ip;
    this.udpPort = t.port;
  }

  /** The sender's IPv4 address of a frame this device read, as a uint32 (10.0.0.1 → 0x0a000001). */
  static senderOf(pool: FramePool, h: number): number {
    const o = pool.offsets[h] - 8;
    const b = pool.bytes;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }

  /** The sender's UDP source port of a frame this device read. */
  static senderPortOf(pool: FramePool, h: number): number {
    const o = pool.offsets[h] - 4;
    const b = pool.bytes;
    return (b[o] << 8) | b[o + 1];
  }
}
