/**
 * The native addon (native/*.cc, built by node-gyp from binding.gyp):
 * addon.cc holds the N-API class, core.h/.cc the shared batch I/O core, and
 * each fd the addon opens is one device object of a kind with its own file
 * (tap.cc, packet.cc, tunnel.cc, unix.cc, stream.cc). Each of those files
 * starts with the part of this contract it implements.
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
 *     is dropped and counted in stats().oversized — unless large spares are
 *     given (offloads, see below): then GSO/GRO super-frames (TCP from a
 *     veth peer with TSO on, the default, or GRO on a NIC) are read whole.
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
 * - Unix sockets: the two ways QEMU (7.2+) connects a VM's NIC to another
 *   process. Paths are 1..107 bytes (sun_path; RangeError otherwise,
 *   TypeError for a non-string). Every socket is non-blocking and
 *   close-on-exec. Binding one: a stale *socket* file at the path is
 *   unlinked first (any other kind of file is left alone, and bind fails
 *   with EADDRINUSE); the new socket file gets mode 0600 (chmod it yourself
 *   if the VM runs as another user). close(fd) unlinks the file the fd
 *   bound, if it is still the same file (device and inode): a path someone
 *   re-bound since is left alone. Errors are errno-shaped with syscall
 *   "STEP 'PATH'" (e.g. "bind unix '/run/vm0.sock'", "unlink stale socket
 *   '…'", "accept unix '…'") and .path set; nothing stays open or on disk
 *   after a failed open.
 * - openUnixDgram(localPath, remotePath) → { fd } (QEMU `-netdev
 *   dgram,local.type=unix,local.path=QPATH,remote.type=unix,remote.path=UPATH`:
 *   open with localPath = UPATH, remotePath = QPATH): an AF_UNIX SOCK_DGRAM
 *   socket bound to localPath, send and receive buffers raised to 4 MiB
 *   where allowed (as for tunnels). It is not connected: the addon remembers
 *   remotePath and sends every frame there, so it works before the peer
 *   exists and keeps working when the peer comes and goes.
 *   - readBatch: recvmmsg(2), up to 64 datagrams per syscall (more loop);
 *     one datagram = one frame at offsets[h] = h*slotSize + headroom,
 *     lengths[h] = its length (an empty datagram gives an empty frame). A
 *     datagram longer than slotSize − headroom (MSG_TRUNC) is dropped and
 *     counted in stats().oversized. Errors as for tunnels (syscall
 *     'recvmmsg'). Datagrams from any sender are read.
 *   - writeBatch: sendmmsg(2) to remotePath (msg_name), up to 64 frames per
 *     syscall, one datagram per frame. Return contract as for TAPs:
 *     consumed + 65536 * failed. While the peer is not there — ENOENT (no
 *     file at remotePath) or ECONNREFUSED (a file nobody is bound to, e.g.
 *     QEMU's left over) — every frame left in the batch fails at once
 *     (consumed, counted as failed; no exception, one syscall). Other hard
 *     errors (EMSGSIZE, ENOBUFS, EACCES, EPERM, …) fail the one frame and
 *     the batch goes on. EAGAIN (the peer's receive queue is full) stops
 *     the batch: the rest stays with the caller.
 *   - pollStart: readable = datagrams wait; the watcher is re-armed after
 *     an error condition (as for packet sockets).
 * - listenUnixStream(path) → { fd } (QEMU `-netdev
 *   stream,addr.type=unix,addr.path=PATH`, QEMU being the client): an
 *   AF_UNIX SOCK_STREAM socket bound to path and listening (backlog 16).
 *   pollStart(fd, cb) works on it: readable = a connection waits.
 *   close(fd) unlinks path (see above); connections accepted from it stay
 *   open until closed themselves.
 * - acceptUnixStream(listenFd) → { fd } | null: accept4(2) of one waiting
 *   connection (non-blocking, close-on-exec, buffers raised as above), or
 *   null when none waits (EAGAIN). ECONNABORTED/EINTR are retried; other
 *   errors throw (e.g. 'EMFILE', syscall "accept unix 'PATH'"). The new fd
 *   is a length-framed stream: every frame, both ways, is a 4-byte
 *   big-endian length followed by that many bytes (QEMU's stream
 *   protocol). The addon gives it a 256 KiB receive buffer and a 64 KiB
 *   pending buffer, allocated once, here; close(fd) frees them.
 *   - readBatch(fd, handles, count): one read(2) takes whatever the socket
 *     holds (up to the free part of the receive buffer) and it is cut into
 *     frames: each frame is copied into the next slot (offsets[h] =
 *     h*slotSize + headroom, lengths[h] = its length, as for a TAP); more
 *     reads follow until `count` frames are filled or the socket is
 *     drained. A frame that has not fully arrived stays buffered for the
 *     next call. Frames already buffered when `count` is reached stay
 *     buffered too — the socket may then not be readable any more, so a
 *     caller that filled its whole batch must call again (FdDevice's
 *     batchFull does). A length of 0 or above min(slotSize − headroom,
 *     65535) is a protocol error: that frame is dropped and counted in
 *     stats().oversized, and its bytes are read and discarded (as they
 *     arrive, across calls), so the following frames stay in sync.
 *     End of stream (the peer closed): readBatch first returns every
 *     complete frame still buffered, then throws an Error with code
 *     'ECONNRESET' (syscall 'read (the peer closed the stream)'); a frame
 *     cut short by the end is lost. Any other read error is thrown the same
 *     way (syscall 'read'). Both are sticky: every later call throws again,
 *     the fd is dead; close it and accept the next connection.
 *   - writeBatch(fd, handles, count): each frame goes out as its 4-byte
 *     length and the frame, up to 256 frames per sendmsg(2) (MSG_NOSIGNAL:
 *     no SIGPIPE), iovecs pointing into the pool (no copy). A partial write
 *     never corrupts the stream: the unwritten tail of the frame it cut is
 *     copied into the fd's pending buffer, that frame counts as consumed,
 *     and the call stops there (the socket is full; the rest stays with the
 *     caller). Pending bytes go out first on the next writeBatch, ahead of
 *     any new frame (writeBatch(fd, h, 0) only flushes them); with a
 *     pollStart watcher on the fd the addon also flushes them by itself as
 *     soon as the socket is writable (the watcher then watches
 *     writability too, and calls cb only for readability), so the tail of
 *     the last frame never waits for more traffic. EAGAIN with nothing
 *     consumed leaves every frame with the caller. Return contract:
 *     consumed + 65536 * failed. A frame of 0 or more than 65535 bytes
 *     cannot be framed: it fails (consumed) without a syscall and the batch
 *     goes on. EPIPE / ECONNRESET (the peer is gone) or any other error
 *     fails every frame left in the call (all consumed, counted as failed;
 *     no exception) and drops the pending bytes; readBatch reports the end
 *     of the stream.
 *   - pollStart: readable = bytes or the end of the stream wait. As for a
 *     TAP, an error condition (POLLERR: the peer closed with data unread)
 *     calls cb once and stops the watcher; readBatch then throws.
 * - Offloads (issue 12). bindPool's optional 6th argument
 *   {meta, smallCapacity, largeSlotSize} binds the pool's annotations
 *   (`meta`: 12 bytes per handle, a virtio-net header in host order, see
 *   src/dataplane/pool.ts) and its large slots (handles ≥ smallCapacity are
 *   largeSlotSize bytes each, after the small ones).
 *   - openTap(name, {offload: true}): IFF_VNET_HDR with a 12-byte header,
 *     TUNSETOFFLOAD CSUM|TSO4|TSO6|TSO_ECN (|USO4|USO6 where the kernel has
 *     them); returns `offloads` (the TUN_F_* bits set). The container's
 *     kernel then hands over TCP super-frames (up to 64 KiB) and partial
 *     checksums, and takes them back.
 *   - readBatch(fd, handles, count, large, largeCount) on such a TAP or a
 *     packet socket: handles are small slots; large[0..largeCount) are
 *     spare large slots. Each read goes into [meta(h) | small slot |
 *     the rest of a large spare]; a frame longer than a small slot ends up
 *     in the large spare, which takes its place in handles, and the small
 *     handle takes the spare's place in large (free it). Returns filled +
 *     65536 * largeUsed (large[0..largeUsed) now hold freed small
 *     handles). With spares given, the call stops when they run out. A
 *     frame's annotations are set from its header; a partial checksum on a
 *     frame that is no super-frame is completed (only super-frames travel
 *     partial). A malformed header (unknown GSO type, segment size 0, a
 *     super-frame without a partial checksum, checksum or header offsets
 *     outside the frame) drops the frame and counts stats().badVnet.
 *   - writeBatch to such a TAP writes [meta(h) | frame]: super-frames go out
 *     whole. To a packet socket, meta(h) is the PACKET_VNET_HDR header (the
 *     kernel segments and completes checksums). To any other fd, a partial
 *     checksum is completed first, and a super-frame fails (its length is
 *     set to 0; stats().noGso): the dataplane segments before such fds.
 * - stats(): process-wide counters of the addon.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TapOptions {
  /** IFF_VNET_HDR only: every frame read or written starts with a raw 12-byte virtio-net header at offsets[h] */
  vnetHdr?: boolean;
  /** offloads on: header into the frame's annotations, TSO/checksum offload, super-frames (see the contract above) */
  offload?: boolean;
}

export interface PoolBinding {
  /** the pool's annotations: 6 u16 per handle */
  meta?: Uint16Array;
  /** handles below this are small slots (default: all) */
  smallCapacity?: number;
  /** bytes per large slot (default slotSize) */
  largeSlotSize?: number;
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
  bindPool(buffer: ArrayBuffer, offsets: Uint32Array, lengths: Uint32Array, slotSize: number, headroom: number, binding?: PoolBinding): void;
  openTap(name: string, opts?: TapOptions): { fd: number; name: string; offloads: number };
  /** An AF_PACKET socket bound to an existing Ethernet interface (see the contract above). */
  openPacket(ifname: string, opts?: PacketOptions): PacketSocket;
  /** Captures arr's data pointer once; pass the returned id as `handles`. */
  bindHandles(arr: Uint32Array): number;
  unbindHandles(id: number): void;
  readBatch(fd: number, handles: Uint32Array | number, count: number, large?: Uint32Array | number, largeCount?: number): number;
  writeBatch(fd: number, handles: Uint32Array | number, count: number): number;
  pollStart(fd: number, cb: () => void): number;
  pollStop(id: number): void;
  /** An AF_INET socket bound (TCP: and listening) inside a network namespace; returns the fd (see the contract above). */
  openSocketIn(netns: string, type: 'udp' | 'tcp', ip: string, port: number): number;
  /** A UDP tunnel endpoint: a UDP socket bound to ip:port (receives) paired with a raw IPv4 socket (sends); see the contract above. */
  openTunnel(ip: string, port: number, opts?: TunnelOptions): TunnelSocket;
  /** QEMU `-netdev dgram`: a unix datagram socket bound to localPath that sends every frame to remotePath (see the contract above). */
  openUnixDgram(localPath: string, remotePath: string): { fd: number };
  /** QEMU `-netdev stream` (server side): a listening unix stream socket at path, mode 0600; close(fd) unlinks path. */
  listenUnixStream(path: string): { fd: number };
  /** One waiting connection as a length-framed stream fd, or null when none waits (see the contract above). */
  acceptUnixStream(listenFd: number): { fd: number } | null;
  /** Stops any watcher on fd and closes it; also closes a tunnel's raw socket, frees a framed stream's buffers, unlinks a bound unix socket's file. */
  close(fd: number): void;
  /** oversized: frames dropped by readBatch for not fitting a slot (or with a bad stream length); watchers: active pollStart watchers */
  stats(): { oversized: number; watchers: number; badVnet: number; noGso: number };
}

/** Binds every part of a FramePool (slots, annotations, large slots). */
export function bindPoolTo(native: NativeAddon, pool: { buffer: ArrayBuffer; offsets: Uint32Array; lengths: Uint32Array; slotSize: number; headroom: number; meta: Uint16Array; capacity: number; largeSlotSize: number }): void {
  native.bindPool(pool.buffer, pool.offsets, pool.lengths, pool.slotSize, pool.headroom, { meta: pool.meta, smallCapacity: pool.capacity, largeSlotSize: pool.largeSlotSize });
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
