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
 *   stops the watcher and the next readBatch throws (EBADFD). (A packet
 *   socket's watcher is re-armed instead: see openPacket.) An exception
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
 * - openPacket(ifname, opts) opens an AF_PACKET socket (SOCK_RAW, protocol
 *   ETH_P_ALL) bound to the Ethernet interface `ifname` (by ifindex), in the
 *   calling process's network namespace or, with opts.netns (a path such as
 *   /proc/PID/ns/net, or a bare name meaning /run/netns/NAME), in that
 *   namespace (a helper thread setns(2)s there just to open it; the process
 *   stays where it is). Non-blocking, close-on-exec, PACKET_IGNORE_OUTGOING
 *   (kernel ≥ 4.20; readBatch also drops PACKET_OUTGOING frames itself, so
 *   this holds on older kernels too), receive buffer raised to 4 MiB where
 *   allowed. opts.promisc adds a PACKET_MR_PROMISC membership (the kernel
 *   drops it when the socket closes) — needed on real NICs to see frames for
 *   MACs other than the interface's own; veth and TAP do not filter by MAC.
 *   Returns the fd, the ifindex and the interface's MAC (SIOCGIFHWADDR) as a
 *   48-bit number (first byte most significant). Throws an errno-shaped
 *   Error (e.g. code 'ENODEV', syscall 'ioctl SIOCGIFINDEX …') when the
 *   interface does not exist, 'EPROTONOSUPPORT' when it is not Ethernet
 *   (ARPHRD_ETHER), RangeError for a name that is empty or > 15 bytes.
 *   Close it with close(fd) (not fs.closeSync: the addon remembers which fds
 *   are packet sockets).
 *
 *   readBatch/writeBatch on a packet socket keep the TAP contract above, with
 *   these differences:
 *   - Batched syscalls: readBatch uses recvmmsg(2) and writeBatch sendmmsg(2),
 *     up to 64 frames per syscall (more loop).
 *   - Direction: only frames arriving on the interface are read (from the
 *     wire or the veth peer, including ones addressed to other MACs).
 *     Frames leaving it are never read back — neither the ones this socket
 *     writes nor, because of PACKET_IGNORE_OUTGOING, the ones the local
 *     stack or any other socket sends through the interface.
 *   - Frames are delivered as they were on the wire: the kernel takes VLAN
 *     tags out of frames before packet sockets see them (hardware or veth
 *     VLAN offload, and software untagging for every received tagged frame);
 *     readBatch puts the 802.1Q/802.1ad tag back in (from PACKET_AUXDATA).
 *     A frame whose L4 checksum was left to offload (a veth peer with tx
 *     checksumming on, the default, sends TCP/UDP as CHECKSUM_PARTIAL) gets
 *     its checksum completed (PACKET_VNET_HDR gives the offsets). The
 *     virtio-net header itself never reaches the pool: offsets[h] is
 *     h*slotSize + headroom as for a TAP.
 *   - Oversized: a frame longer than slotSize − headroom (MSG_TRUNC reports
 *     the real length), or one that would be after its VLAN tag is put back,
 *     is dropped and counted in stats().oversized. Beware: GSO/GRO
 *     super-frames (TCP from a veth peer with TSO on — the default — or GRO
 *     on a real NIC) are up to 64 KiB and are dropped this way; turn those
 *     offloads off on the sending veth (`ethtool -K PEER tso off gso off`)
 *     or the NIC (`gro off`) until the pool has super-frame slots.
 *   - Errors: when the interface goes down the socket reports ENETDOWN once
 *     (readBatch throws it, or a writeBatch that gets there first counts it
 *     as a failed frame); the socket stays bound and receives again when
 *     the link is up. Unlike a TAP's, a packet socket's watcher therefore
 *     survives the error condition (pollStart re-arms it after cb). If the
 *     interface is deleted the socket reports ENETDOWN once and then stays
 *     silent (reads give 0). writeBatch hard errors: ENETDOWN (link down),
 *     EINVAL (< 14 bytes), EMSGSIZE (> MTU + 14, + 4 with a VLAN tag),
 *     ENOBUFS (dropped by the interface's queue); EAGAIN (socket send buffer
 *     full) stops the batch as for a TAP.
 * - openSocketIn(netns, type, ip, port) creates an AF_INET socket
 *   (type 'udp': SOCK_DGRAM, 'tcp': SOCK_STREAM) inside the network
 *   namespace `netns` (an `ip netns` name meaning /run/netns/NAME, or a path
 *   such as /proc/PID/ns/net), the same way openPacket does: a helper thread
 *   setns(2)s there, makes the socket and exits; the process never changes
 *   namespace and the socket stays in the one it was made in (as do the
 *   connections a TCP listener accepts). Non-blocking, close-on-exec,
 *   SO_REUSEADDR, bound to ip:port (port 0: the kernel picks); 'tcp' is
 *   also listening (backlog 128). Returns the fd, for Node to adopt:
 *   `dgram.createSocket('udp4').bind({ fd })` (beware: it emits 'listening'
 *   synchronously, inside bind) or `net.createServer().listen({ fd,
 *   backlog })` (Node calls listen(2) again with `backlog`, default 511).
 *   Node owns it from then on (closing the dgram socket or server closes
 *   it); before that, release it with close(fd). Errors: errno-shaped
 *   (code 'ENOENT' with syscall "open netns '/run/netns/X'" for a
 *   namespace that does not exist, 'EPERM' for setns or a port < 1024
 *   without privileges, 'EADDRINUSE' / 'EADDRNOTAVAIL' with syscall
 *   "bind udp 127.0.0.11:53 in '/run/netns/X'" and .address/.port set);
 *   TypeError for a type other than 'udp'/'tcp' or an ip that is not dotted
 *   IPv4, RangeError for a port outside [0, 65535] or an empty netns.
 *   Binding 127.0.0.11 needs the namespace's lo up (lo's 127.0.0.1/8 is what
 *   makes every 127.x address local).
 * - openTunnel(ip, port, opts) opens a UDP tunnel endpoint (the VXLAN
 *   underlay): a pair of sockets, both non-blocking and close-on-exec, in
 *   the calling process's network namespace or, with opts.netns (as for
 *   openPacket: a path or an `ip netns` name), in that namespace (made by a
 *   helper thread as in openSocketIn):
 *   - a UDP socket (SOCK_DGRAM) bound to ip:port (ip may be '0.0.0.0';
 *     port 0: the kernel picks), SO_REUSEADDR, receive buffer raised to
 *     4 MiB where allowed (SO_RCVBUFFORCE, else SO_RCVBUF capped by
 *     net.core.rmem_max). It receives.
 *   - a send-only raw socket (AF_INET, SOCK_RAW, IPPROTO_RAW: IP_HDRINCL
 *     implied; such a socket never receives), send buffer raised to 4 MiB
 *     the same way. It sends.
 *   Returns { fd, port }: fd is the UDP socket's (the handle for every other
 *   call), port the bound port (the kernel's pick when 0 was asked for). The
 *   addon remembers the raw socket paired with fd; close(fd) stops any
 *   watcher and closes both (not fs.closeSync: that would leave the raw
 *   socket open).
 *   Errors: errno-shaped, syscall naming the step and the address (e.g.
 *   'EADDRINUSE' / 'EADDRNOTAVAIL' with syscall "bind udp 10.0.0.1:4789 in
 *   '/run/netns/X'", .address/.port set; 'EPERM' at "socket raw …" without
 *   CAP_NET_RAW; 'ENOENT' with syscall "open netns '/run/netns/X'" for a
 *   namespace that does not exist); nothing stays open after a failure.
 *   TypeError for an ip that is not dotted IPv4 or a netns that is not a
 *   string, RangeError for a port outside [0, 65535] or an empty netns.
 *
 *   readBatch/writeBatch/pollStart on a tunnel fd:
 *   - readBatch(fd, handles, count): recvmmsg(2) on the UDP socket, up to 64
 *     datagrams per syscall (more loop), until `count` or EAGAIN. Each
 *     datagram's payload (the UDP payload: no IP or UDP header) lands at
 *     offsets[h] = h*slotSize + headroom, lengths[h] = payload bytes (an
 *     empty datagram gives 0). The sender sits in the 8 bytes just before
 *     offsets[h], inside the headroom: its IPv4 address (4 bytes,
 *     big-endian), its UDP source port (2 bytes, big-endian), 2 zero bytes
 *     (TunnelDevice.senderOf/senderPortOf read them). Needs headroom ≥ 8
 *     (RangeError otherwise). A datagram longer than slotSize − headroom
 *     (MSG_TRUNC) is dropped and counted in stats().oversized. Other errors
 *     as for packet sockets: an errno-shaped Error (syscall 'recvmmsg')
 *     unless some datagrams were read, then those are returned and the
 *     error surfaces on the next call. Datagrams with a bad UDP checksum
 *     never get here (the kernel drops them).
 *   - writeBatch(fd, handles, count): sendmmsg(2) on the paired raw socket,
 *     up to 64 frames per syscall (more loop). Each frame (offsets[h],
 *     lengths[h]) is a complete IPv4 packet starting with its header, built
 *     by the caller (IPv4 + UDP + payload, the UDP checksum filled in or
 *     0); it is sent to the destination address in its header (bytes
 *     16..19, also what the route lookup uses) without any fragmentation.
 *     The kernel fills in the header's total length and checksum, and a
 *     zero source address (the route's) or zero id; DF and every other
 *     field go out as given (the pool's copy is not changed). Return
 *     contract as for TAPs and packet sockets: consumed + 65536 * failed.
 *     Hard errors consume the frame and count as failed, and the batch goes
 *     on with the next frame: a frame shorter than 20 bytes, not IP version
 *     4 or with IHL < 5 (EINVAL, checked here, no syscall); EMSGSIZE (longer
 *     than the outgoing interface's MTU, DF or not: raw sockets do not
 *     fragment); ENETUNREACH / EHOSTUNREACH (no route); EINVAL; EPERM (a
 *     netfilter drop); ENOBUFS; any other errno but EINTR (retried).
 *     EAGAIN (send buffer full) stops the batch: the rest stays with the
 *     caller.
 *   - pollStart(fd, cb) watches the UDP socket's readability; like a packet
 *     socket's, the watcher is re-armed after an error condition.
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

export interface PacketOptions {
  /** open the socket in this network namespace: a path (/proc/PID/ns/net, /run/netns/NAME) or an `ip netns` name */
  netns?: string;
  /** PACKET_MR_PROMISC membership (receive frames for every MAC on NICs that filter) */
  promisc?: boolean;
}

export interface PacketSocket {
  fd: number;
  ifindex: number;
  /** the interface's MAC as a 48-bit number (02:00:00:00:00:01 → 0x020000000001) */
  mac: number;
}

export interface TunnelOptions {
  /** open both sockets in this network namespace: a path (/proc/PID/ns/net, /run/netns/NAME) or an `ip netns` name */
  netns?: string;
}

export interface TunnelSocket {
  /** the UDP socket's fd: readBatch reads datagrams from it, writeBatch sends through its paired raw socket */
  fd: number;
  /** the bound UDP port (the kernel's pick when 0 was asked for) */
  port: number;
}

export interface NativeAddon {
  bindPool(buffer: ArrayBuffer, offsets: Uint32Array, lengths: Uint32Array, slotSize: number, headroom: number): void;
  openTap(name: string, opts?: TapOptions): { fd: number; name: string };
  /** An AF_PACKET socket bound to an existing Ethernet interface (see the contract above). */
  openPacket(ifname: string, opts?: PacketOptions): PacketSocket;
  /** Captures arr's data pointer once; pass the returned id as `handles`. */
  bindHandles(arr: Uint32Array): number;
  unbindHandles(id: number): void;
  readBatch(fd: number, handles: Uint32Array | number, count: number): number;
  writeBatch(fd: number, handles: Uint32Array | number, count: number): number;
  pollStart(fd: number, cb: () => void): number;
  pollStop(id: number): void;
  /** An AF_INET socket bound (TCP: and listening) inside a network namespace; returns the fd (see the contract above). */
  openSocketIn(netns: string, type: 'udp' | 'tcp', ip: string, port: number): number;
  /** A UDP tunnel endpoint: a UDP socket bound to ip:port (receives) paired with a raw IPv4 socket (sends); see the contract above. */
  openTunnel(ip: string, port: number, opts?: TunnelOptions): TunnelSocket;
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
