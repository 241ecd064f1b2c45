// usernet native addon: moves Ethernet frames between file descriptors (TAP
// devices, AF_PACKET sockets, unix sockets) and the JS FramePool, in
// batches, and reports readiness through libuv. UDP tunnels (the VXLAN
// underlay) move datagram payloads in and whole IPv4 packets out the same way.
// Unix sockets speak QEMU's netdev protocols: `stream` (a 4-byte big-endian
// length in front of every frame on a SOCK_STREAM connection) and `dgram`
// (one frame per SOCK_DGRAM datagram).
//
// The contract (argument meanings, return values, errors) is written down
// in src/io/native.ts; this file follows it. In short:
//   bindPool(buffer, offsets, lengths, slotSize, headroom)
//   bindHandles(arr) -> id                    (hot-path handle arrays)
//   readBatch(fd, handles|id, count) -> n
//   writeBatch(fd, handles|id, count) -> consumed + 65536 * failed
//   pollStart(fd, cb) -> id,  pollStop(id)
//   openTap(name, {vnetHdr}) -> {fd, name},  close(fd)
//   openPacket(ifname, {netns, promisc}) -> {fd, ifindex, mac}
//   openSocketIn(netns, 'udp'|'tcp', ip, port) -> fd
//   openTunnel(ip, port, {netns}) -> {fd, port}   (UDP in, raw IPv4 out)
//   openUnixDgram(localPath, remotePath) -> {fd}  (QEMU -netdev dgram)
//   listenUnixStream(path) -> {fd},  acceptUnixStream(listenFd) -> {fd}|null
//                                                 (QEMU -netdev stream)
//   stats() -> {oversized, watchers}
//
// Hot path rules: readBatch/writeBatch allocate nothing and create no JS
// objects; pool and bound handle arrays are raw pointers captured once (the
// addon holds references so the GC keeps the backing stores alive).
//
// Build: binding.gyp (node-addon-api, C++ exceptions on, NAPI_VERSION 8).

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// ---------------------------------------------------------------- errors

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  return name != nullptr ? name : "EUNKNOWN";
}

// An Error shaped like Node's system errors: message "EBADF: Bad file
// descriptor, read", .code = 'EBADF', .errno = 9, .syscall = 'read'.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* name = ErrnoName(err);
  std::string msg = std::string(name) + ": " + strerror(err) + ", " + syscall;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

// Raw view of a Uint32Array; the pointer stays valid while a reference to
// the array is held and its ArrayBuffer is not detached (transferred).
// (napi_get_typedarray_info moves a small on-heap typed array's contents
// off-heap, so a captured pointer does not move with the GC.)
struct U32View {
  uint32_t* data = nullptr;
  size_t length = 0;
};

U32View ViewOf(Napi::Env env, napi_value v, const char* what) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  if (!isTyped) ThrowType(env, std::string(what) + " must be a Uint32Array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value ab;
  size_t byteOffset = 0;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &byteOffset), U32View());
  if (type != napi_uint32_array) ThrowType(env, std::string(what) + " must be a Uint32Array");
  U32View out;
  out.data = static_cast<uint32_t*>(data);
  out.length = length;
  return out;
}

// ---------------------------------------------------------------- AF_PACKET helpers

// Every packet socket the addon opens has PACKET_VNET_HDR on: each frame read
// or written is preceded by this header, kept outside the pool slot (a
// separate iovec). On receive it carries the checksum-offload offsets of
// frames whose L4 checksum is not filled in yet (a veth peer with tx
// checksumming on hands over CHECKSUM_PARTIAL packets); readBatch completes
// those, so the pool sees frames as they would be on a wire. On send a zeroed
// header means "no offload".
// struct virtio_net_hdr of <linux/virtio_net.h> (that header does not compile
// as C++: a field is named `class`). Fields in host order (legacy virtio,
// which is what a packet socket uses for PACKET_VNET_HDR).
struct VnetHdr {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t hdrLen;
  uint16_t gsoSize;
  uint16_t csumStart;
  uint16_t csumOffset;
};
static_assert(sizeof(VnetHdr) == 10, "virtio_net_hdr is 10 bytes");
constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
constexpr size_t kMetaBytes = 12;      // per-frame annotations: struct virtio_net_hdr_mrg_rxbuf
constexpr size_t kVnetHdrLen = sizeof(VnetHdr);
// Frames per recvmmsg/sendmmsg call (larger batches loop).
constexpr uint32_t kMmsgBatch = 64;
constexpr size_t kAuxSpace = CMSG_SPACE(sizeof(struct tpacket_auxdata));

// RFC 1071 sum of p[0, len) in host byte order (byte-order independent when
// stored back with the same order), not yet folded.
uint64_t OnesSum(const uint8_t* p, size_t len) {
  uint64_t sum = 0;
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    sum += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    sum += w;
    p += 2;
    len -= 2;
  }
  if (len == 1) {
    uint16_t w = 0;
    memcpy(&w, p, 1);
    sum += w;
  }
  return sum;
}

uint16_t FoldSum(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// CHECKSUM_PARTIAL: the field at csum_start + csum_offset holds the folded
// pseudo-header sum; the final checksum is the complement of the sum from
// csum_start to the end (what the kernel's skb_checksum_help does).
void CompleteChecksum(uint8_t* frame, uint32_t len, const VnetHdr& vh) {
  uint32_t start = vh.csumStart;
  uint32_t field = start + vh.csumOffset;
  if (start >= len || field + 2 > len) return;  // nonsense offsets: leave the frame alone
  uint16_t c = static_cast<uint16_t>(~FoldSum(OnesSum(frame + start, len - start)));
  if (c == 0) c = 0xffff;  // CSUM_MANGLED_0: 0 means "no checksum" to UDP
  memcpy(frame + field, &c, 2);
}

// The same, from a frame's annotations (meta: a virtio-net header).
void CompleteChecksumMeta(uint8_t* frame, uint32_t len, const uint8_t* meta) {
  VnetHdr vh;
  memcpy(&vh, meta, sizeof vh);
  CompleteChecksum(frame, len, vh);
}

// A virtio-net header the dataplane can trust for a frame of len bytes:
// a known GSO type (TCPv4, UDP, TCPv6, UDP_L4, with or without ECN) with a
// non-zero segment size and a partial checksum; a checksum start and field
// inside the frame; a header length inside the frame. The elements check
// the headers themselves (src/wire/gso.ts) before they rely on them.
bool VnetValid(const uint8_t* meta, uint32_t len) {
  VnetHdr vh;
  memcpy(&vh, meta, sizeof vh);
  if ((vh.flags & ~(kVnetNeedsCsum | kVnetDataValid)) != 0) return false;
  uint8_t type = vh.gsoType & 0x7f;
  if (type != 0) {
    if (type != 1 && type != 3 && type != 4 && type != 5) return false;
    if (vh.gsoSize == 0 || (vh.flags & kVnetNeedsCsum) == 0) return false;
  } else if ((vh.gsoType & 0x80) != 0) {
    return false;
  }
  if (vh.hdrLen > len) return false;
  if ((vh.flags & kVnetNeedsCsum) != 0 && (vh.csumStart < 14 || static_cast<uint32_t>(vh.csumStart) + vh.csumOffset + 2 > len)) return false;
  return true;
}

struct PacketOpenResult {
  int fd = -1;
  int ifindex = 0;
  uint8_t mac[6] = {0, 0, 0, 0, 0, 0};
  int err = 0;                   // errno of the failed step
  const char* syscall = nullptr; // which step failed
  int hwType = -1;               // set when the interface is not Ethernet
  bool nsStep = false;           // the failed step was entering the namespace
};

// Opens and binds a packet socket on ifname in the calling thread's network
// namespace. The socket is created with protocol 0 (it receives nothing) and
// only starts receiving at bind(ETH_P_ALL, ifindex): no frames of other
// interfaces slip in between socket() and bind().
PacketOpenResult OpenPacketHere(const std::string& ifname, bool promisc) {
  PacketOpenResult out;
  auto fail = [&out](const char* call) {
    out.err = errno;
    out.syscall = call;
    if (out.fd >= 0) ::close(out.fd);
    out.fd = -1;
    return out;
  };
  out.fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (out.fd < 0) return fail("socket AF_PACKET");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  if (ioctl(out.fd, SIOCGIFINDEX, &ifr) < 0) return fail("ioctl SIOCGIFINDEX");
  out.ifindex = ifr.ifr_ifindex;
  if (ioctl(out.fd, SIOCGIFHWADDR, &ifr) < 0) return fail("ioctl SIOCGIFHWADDR");
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    out.hwType = ifr.ifr_hwaddr.sa_family;
    ::close(out.fd);
    out.fd = -1;
    return out;
  }
  memcpy(out.mac, ifr.ifr_hwaddr.sa_data, 6);
  int one = 1;
  // Kernel >= 4.20. Without it (ENOPROTOOPT) readBatch still drops frames
  // whose sll_pkttype is PACKET_OUTGOING, so the contract holds either way.
  if (setsockopt(out.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0 && errno != ENOPROTOOPT) {
    return fail("setsockopt PACKET_IGNORE_OUTGOING");
  }
  if (setsockopt(out.fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) return fail("setsockopt PACKET_AUXDATA");
  if (setsockopt(out.fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) return fail("setsockopt PACKET_VNET_HDR");
  // A deeper receive queue than the default ~200 KiB (~80 frames): best
  // effort (SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by
  // net.core.rmem_max).
  int rcvbuf = 4 << 20;
  if (setsockopt(out.fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) {
    setsockopt(out.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (promisc) {
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = out.ifindex;
    mr.mr_type = PACKET_MR_PROMISC;  // dropped by the kernel when the socket closes
    if (setsockopt(out.fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) return fail("setsockopt PACKET_ADD_MEMBERSHIP");
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = out.ifindex;
  if (bind(out.fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) return fail("bind AF_PACKET");
  // Binding to an interface that is down leaves ENETDOWN pending on the
  // socket (the hook is registered when it comes up): clear it, a fresh
  // socket starts without an error.
  int soErr = 0;
  socklen_t soLen = sizeof soErr;
  getsockopt(out.fd, SOL_SOCKET, SO_ERROR, &soErr, &soLen);
  return out;
}

// Runs fn() on a short-lived thread that first joins the network namespace
// at nsPath (setns(2) changes only the calling thread: the process never
// leaves its own namespace; sockets made by fn stay in the one they were
// created in after the thread is gone). Returns false, with *err and
// *syscall, when the namespace could not be entered (fn did not run).
// Throws std::system_error when the thread cannot be started.
template <typename F>
bool RunInNetns(const std::string& nsPath, F&& fn, int* err, const char** syscall) {
  bool entered = false;
  std::thread t([&]() {
    int nsfd = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
      *err = errno;
      *syscall = "open netns";
      return;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
      *err = errno;
      *syscall = "setns";
      ::close(nsfd);
      return;
    }
    ::close(nsfd);
    entered = true;
    fn();
  });
  t.join();
  return entered;
}

/** RunInNetns for the openers: a thread that cannot start or a namespace that cannot be entered is a JS error. */
template <typename F>
void RunInNetnsOrThrow(Napi::Env env, const std::string& netns, F&& fn) {
  int nsErr = 0;
  const char* nsSyscall = nullptr;
  bool entered;
  try {
    entered = RunInNetns(netns, fn, &nsErr, &nsSyscall);
  } catch (const std::system_error& e) {  // the thread could not be started
    throw Napi::Error::New(env, std::string("usernet: cannot start a thread to enter ") + netns + ": " + e.what());
  }
  if (!entered) {
    std::string where = std::string(nsSyscall) + " '" + netns + "'";
    throw ErrnoError(env, nsErr, where.c_str());
  }
}

// OpenPacketHere from a thread inside the namespace at nsPath.
PacketOpenResult OpenPacketIn(const std::string& nsPath, const std::string& ifname, bool promisc) {
  PacketOpenResult out;
  int err = 0;
  const char* syscall = nullptr;
  if (!RunInNetns(nsPath, [&]() { out = OpenPacketHere(ifname, promisc); }, &err, &syscall)) {
    out.err = err;
    out.syscall = syscall;
    out.nsStep = true;
  }
  return out;
}

// ---------------------------------------------------------------- inet sockets

struct InetOpenResult {
  int fd = -1;
  int err = 0;
  const char* syscall = nullptr;
};

// An AF_INET socket of `type` (SOCK_DGRAM or SOCK_STREAM) in the calling
// thread's network namespace: non-blocking, close-on-exec, SO_REUSEADDR,
// bound to addr (a stream socket also listening, backlog 128).
InetOpenResult OpenInetHere(int type, const struct sockaddr_in& addr) {
  InetOpenResult out;
  auto fail = [&out](const char* call) {
    out.err = errno;
    out.syscall = call;
    if (out.fd >= 0) ::close(out.fd);
    out.fd = -1;
    return out;
  };
  out.fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (out.fd < 0) return fail("socket");
  int one = 1;
  if (setsockopt(out.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return fail("setsockopt SO_REUSEADDR");
  if (bind(out.fd, reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) < 0) return fail("bind");
  if (type == SOCK_STREAM && listen(out.fd, 128) < 0) return fail("listen");
  return out;
}

// ---------------------------------------------------------------- UDP tunnels

struct TunnelOpenResult {
  int fd = -1;     // the UDP socket (receives)
  int rawFd = -1;  // the raw socket (sends whole IPv4 packets)
  uint16_t port = 0;  // the bound port (host order; the kernel's pick for 0)
  int err = 0;
  const char* syscall = nullptr;
};

// Raises a socket buffer to 4 MiB: best effort (the *FORCE options need
// CAP_NET_ADMIN; the plain ones are capped by net.core.[rw]mem_max).
void RaiseBuffer(int fd, int forceOpt, int opt) {
  int size = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, forceOpt, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size);
}

// A tunnel's socket pair in the calling thread's network namespace: a UDP
// socket bound to addr (non-blocking, close-on-exec, SO_REUSEADDR, 4 MiB
// receive buffer) and a send-only raw socket (IPPROTO_RAW: IP_HDRINCL
// implied, receives nothing; non-blocking, close-on-exec, 4 MiB send
// buffer). On failure neither is left open.
TunnelOpenResult OpenTunnelHere(const struct sockaddr_in& addr) {
  TunnelOpenResult out;
  auto fail = [&out](const char* call) {
    out.err = errno;
    out.syscall = call;
    if (out.fd >= 0) ::close(out.fd);
    if (out.rawFd >= 0) ::close(out.rawFd);
    out.fd = -1;
    out.rawFd = -1;
    return out;
  };
  out.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (out.fd < 0) return fail("socket udp");
  int one = 1;
  if (setsockopt(out.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return fail("setsockopt SO_REUSEADDR");
  RaiseBuffer(out.fd, SO_RCVBUFFORCE, SO_RCVBUF);
  out.rawFd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (out.rawFd < 0) return fail("socket raw");
  RaiseBuffer(out.rawFd, SO_SNDBUFFORCE, SO_SNDBUF);
  if (bind(out.fd, reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) < 0) return fail("bind udp");
  struct sockaddr_in bound;
  socklen_t boundLen = sizeof bound;
  if (getsockname(out.fd, reinterpret_cast<struct sockaddr*>(&bound), &boundLen) < 0) return fail("getsockname");
  out.port = ntohs(bound.sin_port);
  return out;
}

// ---------------------------------------------------------------- namespaces

// The namespace argument of openPacket/openSocketIn: a path, or a bare
// `ip netns` name meaning /run/netns/NAME.
std::string NetnsPath(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) ThrowType(env, "netns must be a string");
  std::string ns = v.As<Napi::String>().Utf8Value();
  if (ns.empty()) ThrowRange(env, "netns must not be empty");
  if (ns.find('/') == std::string::npos) {
    if (ns == "." || ns == "..") ThrowRange(env, "invalid netns name '" + ns + "'");
    ns = "/run/netns/" + ns;
  }
  return ns;
}

// ---------------------------------------------------------------- unix sockets (QEMU netdev stream / dgram)

// A framed stream's receive buffer (allocated once, at accept): reads take
// as much as the socket holds, up to this, and frames are cut out of it.
constexpr size_t kStreamRxCap = 256 * 1024;
// The largest frame the stream protocol carries (QEMU's length prefix is 32
// bits, but no Ethernet frame of ours comes near this).
constexpr uint32_t kStreamMaxFrame = 65535;
// A framed stream's pending buffer: at most the tail of one frame.
constexpr size_t kStreamTxCap = 4 + kStreamMaxFrame;
// Frames per sendmsg(2) on a framed stream (2 iovecs each + the pending
// tail: well under IOV_MAX).
constexpr uint32_t kStreamBatch = 256;

struct Watcher;

// What the addon remembers about a unix socket it opened or accepted.
struct UnixFd {
  enum Kind { kDgram, kListener, kFramed };
  Kind kind = kDgram;
  // The socket file this fd bound (dgram, listener): close(fd) unlinks it,
  // if it is still the same file (dev/ino).
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
  // dgram: where writeBatch sends every frame
  struct sockaddr_un remote;
  socklen_t remoteLen = 0;
  // framed stream, receive side: bytes [rxStart, rxEnd) of rx are read but
  // not yet cut into frames; rxSkip bytes still to discard (the rest of a
  // frame with a bad length); rxErr: EOF (ECONNRESET) or a read error,
  // sticky, thrown once the buffered frames are delivered.
  std::unique_ptr<uint8_t[]> rx;
  uint32_t rxStart = 0;
  uint32_t rxEnd = 0;
  uint64_t rxSkip = 0;
  int rxErr = 0;
  // framed stream, send side: bytes [txOff, txLen) of tx are the unwritten
  // tail of a frame a partial write cut; they go out before anything else.
  std::unique_ptr<uint8_t[]> tx;
  uint32_t txOff = 0;
  uint32_t txLen = 0;
  // the pollStart watcher on this fd, if any (a framed stream's watcher
  // also flushes tx when the socket becomes writable)
  Watcher* watcher = nullptr;
};

// Writes a framed stream's pending bytes as far as the socket takes them.
// A hard error (EPIPE, ECONNRESET, …) drops them: the connection is gone
// and the read side reports it.
void FlushFramed(int fd, UnixFd* u) {
  while (u->txLen > u->txOff) {
    ssize_t r = send(fd, u->tx.get() + u->txOff, u->txLen - u->txOff, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      break;
    }
    u->txOff += static_cast<uint32_t>(r);
  }
  u->txOff = 0;
  u->txLen = 0;
}

// ---------------------------------------------------------------- poll watchers

class Usernet;

// Per-env bookkeeping that must outlive the addon instance: close callbacks
// of uv handles can run after the instance data is finalized at env
// teardown, so they only ever touch this and the watcher itself.
struct LoopState {
  uv_loop_t* loop = nullptr;
  int closing = 0;  // uv handles closed whose close callback has not run
  bool tearingDown = false;
  napi_async_cleanup_hook_handle hook = nullptr;
};

void OnWatcherClosed(uv_handle_t* h);

struct Watcher {
  uv_poll_t handle;
  napi_env env;
  Napi::FunctionReference cb;
  napi_async_context asyncContext = nullptr;
  LoopState* loopState;
  uint32_t id;
  int fd;
  bool inCallback = false;  // cb is running (pollStop from inside cb is deferred)
  bool stopPending = false;
  bool rearmOnError = false;  // a packet socket or tunnel: an error condition is transient
  UnixFd* framed = nullptr;   // a framed stream's state: flush its pending bytes when writable
  bool writable = false;      // also watching for writability (framed: bytes pending)
};

void OnPoll(uv_poll_t* h, int status, int events);

// Watch w's fd for writability too (a framed stream with pending bytes), or
// stop. Never restarts a watcher libuv stopped (error condition) or that is
// being released.
void SetWritable(Watcher* w, bool on) {
  if (w->writable == on || w->stopPending) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&w->handle)) == 0) return;
  w->writable = on;
  uv_poll_start(&w->handle, on ? (UV_READABLE | UV_WRITABLE) : UV_READABLE, OnPoll);
}

void FinishRelease(Watcher* w) {
  w->cb.Reset();
  if (w->asyncContext != nullptr) napi_async_destroy(w->env, w->asyncContext);
  w->asyncContext = nullptr;
  w->loopState->closing++;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnWatcherClosed);
}

// Stops watching now; drops the JS references and closes the uv handle now,
// or right after cb returns when called from inside cb.
void ReleaseWatcher(Watcher* w) {
  uv_poll_stop(&w->handle);
  if (w->framed != nullptr) w->framed->watcher = nullptr;
  w->framed = nullptr;
  if (w->inCallback) {
    w->stopPending = true;
  } else {
    FinishRelease(w);
  }
}

void MaybeFinishTeardown(LoopState* ls) {
  if (ls->tearingDown && ls->closing == 0) {
    napi_remove_async_cleanup_hook(ls->hook);
    delete ls;
  }
}

void OnWatcherClosed(uv_handle_t* h) {
  Watcher* w = static_cast<Watcher*>(h->data);
  LoopState* ls = w->loopState;
  delete w;
  ls->closing--;
  MaybeFinishTeardown(ls);
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Watcher* w = static_cast<Watcher*>(h->data);
  // A framed stream with pending bytes: writable means the tail of the
  // frame a partial write cut can go out now. That is the addon's business
  // alone; JS hears only about readability.
  if (status >= 0 && (events & UV_WRITABLE) != 0 && w->framed != nullptr) {
    FlushFramed(w->fd, w->framed);
    if (w->framed->txLen == 0) SetWritable(w, false);
    if ((events & (UV_READABLE | UV_DISCONNECT)) == 0) return;
  }
  // status < 0 (UV_EBADF on POLLERR, e.g. a TAP whose device was deleted):
  // libuv has already stopped the watcher. We still call cb so that its
  // readBatch surfaces the real error (EBADFD) to JS. Packet sockets are
  // re-armed after cb (see below).
  napi_env env = w->env;
  Napi::HandleScope scope(env);
  napi_value global;
  napi_get_global(env, &global);
  napi_value fn = w->cb.Value();
  napi_value result;
  // napi_make_callback opens a callback scope: process.nextTick and promise
  // jobs queued by cb run when it returns, as for any libuv-driven callback.
  w->inCallback = true;
  napi_status st = napi_make_callback(env, w->asyncContext, global, fn, 0, nullptr, &result);
  w->inCallback = false;
  if (w->stopPending) {
    FinishRelease(w);
  } else if (status < 0 && w->rearmOnError) {
    // A packet socket reports POLLERR when its interface goes down
    // (ENETDOWN, consumed by the read cb just made). The socket stays bound
    // and receives again once the link is up, so keep watching. Should the
    // error still be pending (cb did not read), it fires again next turn,
    // level-triggered like readability.
    uv_poll_start(&w->handle, w->writable ? (UV_READABLE | UV_WRITABLE) : UV_READABLE, OnPoll);
  }
  if (st == napi_pending_exception) {
    // cb threw: hand the exception to process 'uncaughtException' (the
    // default handler prints it and exits the process). Nothing is pending
    // when JS could not be entered at all (env shutting down).
    napi_value exc;
    napi_valuetype type = napi_undefined;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok && napi_typeof(env, exc, &type) == napi_ok &&
        type != napi_undefined) {
      napi_fatal_exception(env, exc);
    }
  }
  // Any other failure means the isolate is terminating (worker.terminate()
  // mid-callback): nothing to report to, the env cleanup hook closes us.
}

// ---------------------------------------------------------------- the addon

class Usernet : public Napi::Addon<Usernet> {
 public:
  Usernet(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
        InstanceMethod("bindPool", &Usernet::BindPool),
        InstanceMethod("bindHandles", &Usernet::BindHandles),
        InstanceMethod("unbindHandles", &Usernet::UnbindHandles),
        InstanceMethod("readBatch", &Usernet::ReadBatch),
        InstanceMethod("writeBatch", &Usernet::WriteBatch),
        InstanceMethod("openTap", &Usernet::OpenTap),
        InstanceMethod("openPacket", &Usernet::OpenPacket),
        InstanceMethod("openSocketIn", &Usernet::OpenSocketIn),
        InstanceMethod("openTunnel", &Usernet::OpenTunnel),
        InstanceMethod("openUnixDgram", &Usernet::OpenUnixDgram),
        InstanceMethod("listenUnixStream", &Usernet::ListenUnixStream),
        InstanceMethod("acceptUnixStream", &Usernet::AcceptUnixStream),
        InstanceMethod("close", &Usernet::Close),
        InstanceMethod("pollStart", &Usernet::PollStart),
        InstanceMethod("pollStop", &Usernet::PollStop),
        InstanceMethod("stats", &Usernet::Stats),
    });
    loopState_ = new LoopState();
    if (napi_get_uv_event_loop(env, &loopState_->loop) != napi_ok) {
      throw Napi::Error::New(env, "usernet: no libuv loop for this environment");
    }
    // At env teardown (process exit, worker termination) close every
    // watcher and keep the env alive until libuv has run the close callbacks.
    napi_add_async_cleanup_hook(env, &Usernet::AsyncCleanup, this, &loopState_->hook);
  }

 private:
  // ---- pool and handle arrays

  uint8_t* base_ = nullptr;
  size_t byteLength_ = 0;
  uint32_t* offsets_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t slotSize_ = 0;
  uint32_t headroom_ = 0;
  uint32_t maxFrame_ = 0;
  // Large slots (handles >= smallCap_): largeSlotSize_ bytes each, from
  // largeBase_. Annotations: 12 bytes per handle at meta_ (a virtio-net
  // header, host order; see src/dataplane/pool.ts); null when the pool has
  // none bound (then metaScratch_ stands in, always zero).
  uint32_t smallCap_ = 0;
  uint32_t largeSlotSize_ = 0;
  size_t largeBase_ = 0;
  uint32_t maxLarge_ = 0;
  uint8_t* meta_ = nullptr;
  uint8_t metaScratch_[kMetaBytes] = {};
  Napi::Reference<Napi::ArrayBuffer> bufferRef_;
  Napi::ObjectReference offsetsRef_;
  Napi::ObjectReference lengthsRef_;
  Napi::ObjectReference metaRef_;

  size_t SlotBase(uint32_t h) const {
    return h < smallCap_ ? static_cast<size_t>(h) * slotSize_ : largeBase_ + static_cast<size_t>(h - smallCap_) * largeSlotSize_;
  }
  uint32_t SlotMax(uint32_t h) const { return h < smallCap_ ? maxFrame_ : maxLarge_; }
  uint8_t* MetaOf(uint32_t h) {
    if (meta_ != nullptr) return meta_ + static_cast<size_t>(h) * kMetaBytes;
    memset(metaScratch_, 0, kMetaBytes);
    return metaScratch_;
  }

  struct BoundHandles {
    U32View view;
    Napi::ObjectReference ref;
  };
  std::vector<BoundHandles> bound_;  // index = id − 1; empty ref = free slot

  // ---- watchers
  LoopState* loopState_;
  std::unordered_map<uint32_t, Watcher*> watchers_;
  uint32_t nextWatcherId_ = 1;

  // ---- counters
  double oversized_ = 0;
  double badVnet_ = 0;   // frames with a malformed virtio-net header (dropped)
  double noGso_ = 0;     // super-frames handed to an fd that cannot take them (failed)
  uint8_t sentinel_[1];

  // ---- packet sockets
  // isPacket_[fd] != 0: fd is a packet socket opened by openPacket (batched
  // with recvmmsg/sendmmsg, frames preceded by a virtio-net header).
  std::vector<uint8_t> isPacket_;
  // recvmmsg/sendmmsg scratch (the hot path allocates nothing; JS is single
  // threaded, so one set serves every call)
  struct mmsghdr mmsg_[kMmsgBatch];
  struct iovec mmsgIov_[kMmsgBatch][3];
  VnetHdr vnet_[kMmsgBatch];
  struct sockaddr_ll sll_[kMmsgBatch];
  alignas(struct cmsghdr) uint8_t aux_[kMmsgBatch][kAuxSpace];
  struct sockaddr_in inet_[kMmsgBatch];  // tunnels: senders (read), destinations (write)

  // ---- tunnels
  // tunnelRaw_[fd] = rawFd + 1 when fd is a tunnel's UDP socket opened by
  // openTunnel (rawFd: its send-only raw socket); 0 otherwise.
  std::vector<int> tunnelRaw_;

  // ---- unix sockets
  // unix_[fd]: the state of a unix socket opened by openUnixDgram /
  // listenUnixStream / acceptUnixStream; null otherwise.
  std::vector<std::unique_ptr<UnixFd>> unix_;
  uint8_t streamHdr_[kStreamBatch][4];  // framed writes: the length prefixes of one sendmsg
  struct iovec streamIov_[2 * kStreamBatch + 1];

  UnixFd* UnixOf(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < unix_.size() ? unix_[fd].get() : nullptr;
  }
  // Takes fd's unix state away (without unlinking anything): fd was closed
  // and its number reused, or close(fd) is about to close it.
  std::unique_ptr<UnixFd> TakeUnix(int fd) {
    std::unique_ptr<UnixFd> out;
    if (fd < 0 || static_cast<size_t>(fd) >= unix_.size()) return out;
    out = std::move(unix_[fd]);
    if (out && out->watcher != nullptr) out->watcher->framed = nullptr;
    if (out) out->watcher = nullptr;
    return out;
  }
  void SetUnix(int fd, std::unique_ptr<UnixFd> u) {
    if (static_cast<size_t>(fd) >= unix_.size()) unix_.resize(static_cast<size_t>(fd) + 1);
    unix_[fd] = std::move(u);
  }
  // A number an opener just got from the kernel: whatever the addon
  // remembered about an earlier fd with that number (closed behind its
  // back) no longer applies.
  void ClaimFd(int fd) {
    MarkPacket(fd, false);
    MarkTapOffload(fd, false);
    MarkTunnel(fd, -1);
    TakeUnix(fd);
  }

  // tapOffload_[fd] != 0: fd is a TAP opened with offloads (IFF_VNET_HDR,
  // 12-byte header = the frame's annotations, TUNSETOFFLOAD).
  std::vector<uint8_t> tapOffload_;
  bool IsTapOffload(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < tapOffload_.size() && tapOffload_[fd] != 0;
  }
  void MarkTapOffload(int fd, bool on) {
    if (fd < 0) return;
    if (static_cast<size_t>(fd) >= tapOffload_.size()) {
      if (!on) return;
      tapOffload_.resize(static_cast<size_t>(fd) + 1, 0);
    }
    tapOffload_[fd] = on ? 1 : 0;
  }

  bool IsPacket(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < isPacket_.size() && isPacket_[fd] != 0;
  }
  void MarkPacket(int fd, bool on) {
    if (fd < 0) return;
    if (static_cast<size_t>(fd) >= isPacket_.size()) {
      if (!on) return;
      isPacket_.resize(static_cast<size_t>(fd) + 1, 0);
    }
    isPacket_[fd] = on ? 1 : 0;
  }

  // The raw socket paired with tunnel fd, or −1 when fd is not a tunnel.
  int TunnelRaw(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < tunnelRaw_.size() ? tunnelRaw_[fd] - 1 : -1;
  }
  void MarkTunnel(int fd, int rawFd) {
    if (fd < 0) return;
    if (static_cast<size_t>(fd) >= tunnelRaw_.size()) {
      if (rawFd < 0) return;
      tunnelRaw_.resize(static_cast<size_t>(fd) + 1, 0);
    }
    tunnelRaw_[fd] = rawFd + 1;
  }

  void RequirePool(Napi::Env env) {
    if (base_ == nullptr) throw Napi::Error::New(env, "usernet: bindPool() has not been called");
  }

  static uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
    napi_value v = info[i];
    uint32_t out;
    if (napi_get_value_uint32(info.Env(), v, &out) != napi_ok) ThrowType(info.Env(), std::string(what) + " must be a number");
    return out;
  }

  static int ArgFd(const Napi::CallbackInfo& info, size_t i) {
    int32_t fd;
    if (napi_get_value_int32(info.Env(), info[i], &fd) != napi_ok) ThrowType(info.Env(), "fd must be a number");
    return fd;
  }

  // handles argument: a bindHandles() id (no introspection) or a Uint32Array.
  U32View HandlesArg(const Napi::CallbackInfo& info, size_t i) {
    napi_env env = info.Env();
    napi_value v = info[i];
    uint32_t id;
    if (napi_get_value_uint32(env, v, &id) == napi_ok) {
      if (id == 0 || id > bound_.size() || bound_[id - 1].ref.IsEmpty()) ThrowRange(env, "unknown handles id " + std::to_string(id));
      return bound_[id - 1].view;
    }
    return ViewOf(env, v, "handles");
  }

  void BindPool(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArrayBuffer()) ThrowType(env, "buffer must be an ArrayBuffer");
    Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
    U32View offsets = ViewOf(env, info[1], "offsets");
    U32View lengths = ViewOf(env, info[2], "lengths");
    uint32_t slotSize = ArgU32(info, 3, "slotSize");
    uint32_t headroom = ArgU32(info, 4, "headroom");
    if (slotSize == 0 || headroom >= slotSize) ThrowRange(env, "need 0 <= headroom < slotSize");
    size_t capacity = offsets.length < lengths.length ? offsets.length : lengths.length;
    size_t byteLength = buffer.ByteLength();
    // optional: {meta: Uint16Array (6 per handle), smallCapacity, largeSlotSize}
    size_t small = capacity;
    uint32_t largeSlotSize = slotSize;
    uint8_t* meta = nullptr;
    Napi::Object metaObj;
    if (info.Length() > 5 && info[5].IsObject()) {
      Napi::Object o = info[5].As<Napi::Object>();
      Napi::Value m = o.Get("meta");
      if (!m.IsUndefined()) {
        if (!m.IsTypedArray() || m.As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) ThrowType(env, "meta must be a Uint16Array");
        Napi::Uint16Array ma = m.As<Napi::Uint16Array>();
        if (ma.ElementLength() < capacity * 6) ThrowRange(env, "meta is shorter than 6 * capacity");
        meta = reinterpret_cast<uint8_t*>(ma.Data());
        metaObj = ma;
      }
      Napi::Value sc = o.Get("smallCapacity");
      if (sc.IsNumber()) small = sc.As<Napi::Number>().Uint32Value();
      Napi::Value ls = o.Get("largeSlotSize");
      if (ls.IsNumber()) largeSlotSize = ls.As<Napi::Number>().Uint32Value();
      if (small > capacity || largeSlotSize < slotSize) ThrowRange(env, "need smallCapacity <= capacity and largeSlotSize >= slotSize");
    }
    if (capacity == 0 || capacity > UINT32_MAX / slotSize ||
        static_cast<uint64_t>(small) * slotSize + static_cast<uint64_t>(capacity - small) * largeSlotSize > byteLength) {
      ThrowRange(env, "buffer is smaller than capacity * slotSize");
    }
    base_ = static_cast<uint8_t*>(buffer.Data());
    byteLength_ = byteLength;
    offsets_ = offsets.data;
    lengths_ = lengths.data;
    capacity_ = static_cast<uint32_t>(capacity);
    slotSize_ = slotSize;
    headroom_ = headroom;
    maxFrame_ = slotSize - headroom;
    smallCap_ = static_cast<uint32_t>(small);
    largeSlotSize_ = largeSlotSize;
    largeBase_ = static_cast<size_t>(small) * slotSize;
    maxLarge_ = largeSlotSize - headroom;
    meta_ = meta;
    bufferRef_ = Napi::Persistent(buffer);
    offsetsRef_ = Napi::Persistent(info[1].As<Napi::Object>());
    lengthsRef_ = Napi::Persistent(info[2].As<Napi::Object>());
    if (meta != nullptr) metaRef_ = Napi::Persistent(metaObj);
    else metaRef_.Reset();
  }

  Napi::Value BindHandles(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    U32View view = ViewOf(env, info[0], "handles");
    size_t slot = 0;
    while (slot < bound_.size() && !bound_[slot].ref.IsEmpty()) slot++;
    if (slot == bound_.size()) bound_.emplace_back();
    bound_[slot].view = view;
    bound_[slot].ref = Napi::Persistent(info[0].As<Napi::Object>());
    return Napi::Number::New(env, static_cast<double>(slot + 1));
  }

  void UnbindHandles(const Napi::CallbackInfo& info) {
    uint32_t id = ArgU32(info, 0, "id");
    if (id == 0 || id > bound_.size() || bound_[id - 1].ref.IsEmpty()) ThrowRange(info.Env(), "unknown handles id " + std::to_string(id));
    bound_[id - 1].ref.Reset();
    bound_[id - 1].view = U32View();
  }

  // ---- batched I/O (hot path: no allocation, no JS objects on success)

  Napi::Value ReadBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    U32View handles = HandlesArg(info, 1);
    uint32_t count = ArgU32(info, 2, "count");
    RequirePool(env);
    if (count > handles.length) ThrowRange(env, "count exceeds handles.length");
    const uint32_t* hs = handles.data;
    for (uint32_t i = 0; i < count; i++) {
      if (hs[i] >= capacity_) ThrowRange(env, "handle " + std::to_string(hs[i]) + " out of range");
    }
    // optional large spares (handles of large slots): where a super-frame's
    // bytes beyond a small slot go (TAPs with offloads, packet sockets)
    uint32_t* large = nullptr;
    uint32_t largeCount = 0;
    if (info.Length() > 4 && !info[3].IsUndefined()) {
      U32View lv = HandlesArg(info, 3);
      largeCount = ArgU32(info, 4, "largeCount");
      if (largeCount > lv.length) ThrowRange(env, "largeCount exceeds large.length");
      for (uint32_t i = 0; i < largeCount; i++) {
        if (lv.data[i] >= capacity_ || lv.data[i] < smallCap_) ThrowRange(env, "large handle " + std::to_string(lv.data[i]) + " is not a large slot");
      }
      large = lv.data;
    }
    for (uint32_t i = 0; i < count; i++) {
      if (hs[i] >= smallCap_ && large != nullptr) ThrowRange(env, "with large spares, handles must be small slots");
    }
    uint32_t filled;
    uint32_t largeUsed = 0;
    UnixFd* u;
    if (IsTapOffload(fd)) {
      filled = ReadTapOffload(env, fd, const_cast<uint32_t*>(hs), count, large, largeCount, &largeUsed);
    } else if (IsPacket(fd)) {
      filled = ReadPacket(env, fd, const_cast<uint32_t*>(hs), count, large, largeCount, &largeUsed);
    } else if (TunnelRaw(fd) >= 0) {
      // the sender's address goes into the 8 bytes in front of the payload
      if (headroom_ < 8) ThrowRange(env, "a tunnel needs a pool headroom of at least 8 bytes");
      filled = ReadDatagrams(env, fd, hs, count, true);
    } else if ((u = UnixOf(fd)) != nullptr && u->kind != UnixFd::kListener) {
      filled = u->kind == UnixFd::kFramed ? ReadFramed(env, fd, u, hs, count) : ReadDatagrams(env, fd, hs, count, false);
    } else {
      filled = ReadFd(env, fd, hs, count);
    }
    return Napi::Number::New(env, static_cast<double>(filled) + 65536.0 * largeUsed);
  }

  // A frame read into small slot h overflowed into large spare L: move its
  // head (a full small slot) and its annotations there. The large handle
  // takes h's place in hs; h takes the spare's place in large[] (the caller
  // frees it).
  void PromoteToLarge(uint32_t* hsAt, uint32_t* largeAt, uint32_t smallH) {
    uint32_t L = *largeAt;
    memcpy(base_ + SlotBase(L) + headroom_, base_ + SlotBase(smallH) + headroom_, maxFrame_);
    memcpy(MetaOf(L), MetaOf(smallH), kMetaBytes);
    *hsAt = L;
    *largeAt = smallH;
  }

  // TAPs with offloads: one readv(2) per frame into [annotations (12-byte
  // virtio-net header) | small slot | tail of a large spare]. A frame that
  // fits a small slot stays there (a partial checksum on a frame that is no
  // super-frame is completed, so only super-frames travel partial); a
  // longer one (a super-frame) is moved into the large spare
  // (PromoteToLarge: one small slot's bytes copied). Without spares left the
  // call stops (more may wait: the caller refills and reads again); without
  // any spares super-frames cannot be read whole and are dropped (counted
  // oversized). A malformed header (VnetValid) is counted (badVnet) and the
  // frame dropped.
  uint32_t ReadTapOffload(Napi::Env env, int fd, uint32_t* hs, uint32_t count, uint32_t* large, uint32_t largeCount, uint32_t* largeUsed) {
    uint32_t filled = 0;
    uint32_t dropped = 0;
    uint32_t k = 0;
    while (filled < count) {
      if (large != nullptr && largeCount > 0 && k == largeCount) break;
      uint32_t h = hs[filled];
      uint8_t* meta = MetaOf(h);
      size_t off = SlotBase(h) + headroom_;
      struct iovec iov[3];
      iov[0] = {meta, kMetaBytes};
      iov[1] = {base_ + off, maxFrame_};
      bool tail = large != nullptr && k < largeCount;
      uint32_t limit = tail ? maxLarge_ : maxFrame_;
      if (tail) iov[2] = {base_ + SlotBase(large[k]) + headroom_ + maxFrame_, maxLarge_ - maxFrame_};
      else iov[2] = {sentinel_, 1};
      ssize_t r = readv(fd, iov, 3);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (filled > 0) break;
        throw ErrnoError(env, err, "read");
      }
      if (r == 0) break;
      if (static_cast<size_t>(r) < kMetaBytes + 14) {
        badVnet_++;
        if (++dropped > count) break;
        continue;
      }
      uint32_t len = static_cast<uint32_t>(r) - kMetaBytes;
      if (len > limit) {
        oversized_++;
        if (++dropped > count) break;
        continue;
      }
      if (!VnetValid(meta, len)) {
        badVnet_++;
        if (++dropped > count) break;
        continue;
      }
      meta[10] = 0;  // num_buffers: not ours
      meta[11] = 0;
      if (len > maxFrame_) {
        PromoteToLarge(&hs[filled], &large[k], h);
        h = hs[filled];
        off = SlotBase(h) + headroom_;
        meta = MetaOf(h);
        k++;
      } else if ((meta[0] & kVnetNeedsCsum) != 0 && meta[1] == 0) {
        CompleteChecksumMeta(base_ + off, len, meta);
        meta[0] &= static_cast<uint8_t>(~kVnetNeedsCsum);
      }
      offsets_[h] = static_cast<uint32_t>(off);
      lengths_[h] = len;
      filled++;
    }
    *largeUsed = k;
    return filled;
  }

  // TAPs (and any other fd): one readv(2) per frame.
  uint32_t ReadFd(Napi::Env env, int fd, const uint32_t* hs, uint32_t count) {
    uint32_t filled = 0;
    uint32_t dropped = 0;  // oversized frames skipped; bounded so the call ends
    while (filled < count) {
      uint32_t h = hs[filled];
      uint32_t off = SlotBase(h) + headroom_;
      // One readv(2) per frame: the slot, then a 1-byte sentinel. A TAP
      // copies at most the buffer's size and returns the copied length, so
      // a frame larger than the slot would otherwise arrive silently
      // truncated; reaching the sentinel tells us it did.
      struct iovec iov[2] = {{base_ + off, maxFrame_}, {sentinel_, 1}};
      ssize_t r = readv(fd, iov, 2);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (filled > 0) break;  // return what we have; the error recurs next call
        throw ErrnoError(env, err, "read");
      }
      if (r == 0) break;  // EOF (not a TAP) or empty datagram: nothing to deliver
      if (static_cast<size_t>(r) > maxFrame_) {
        // Larger than a slot (MTU above slotSize − headroom − 14, or GSO):
        // the rest is lost, so drop it, count it and reuse the slot.
        oversized_++;
        if (++dropped > count) break;
        continue;
      }
      offsets_[h] = off;
      lengths_[h] = static_cast<uint32_t>(r);
      filled++;
    }
    return filled;
  }

  // Packet sockets: recvmmsg(2), up to kMmsgBatch frames per call, each into
  // [virtio-net header | slot]. Per frame: sll_pkttype (our own direction is
  // dropped), MSG_TRUNC (the real length: too long for a slot → dropped and
  // counted), the header (a partial checksum is completed) and the
  // PACKET_AUXDATA control message (a VLAN tag the kernel took out of the
  // frame, as NICs and veth do with tx-vlan offload, is put back in).
  // Frames dropped mid-batch leave a gap: later frames move down one slot
  // (a copy, on that rare path only) so handles[0..n) stay the filled ones.
  uint32_t ReadPacket(Napi::Env env, int fd, uint32_t* hs, uint32_t count, uint32_t* large, uint32_t largeCount, uint32_t* largeUsed) {
    uint32_t filled = 0;
    uint32_t dropped = 0;
    uint32_t k = 0;  // large spares used (large[0..k))
    while (filled < count) {
      uint32_t want = count - filled < kMmsgBatch ? count - filled : kMmsgBatch;
      // every frame of the call gets a tail in its own spare (large[k + j])
      if (large != nullptr) {
        if (k == largeCount) break;
        if (want > largeCount - k) want = largeCount - k;
      }
      for (uint32_t j = 0; j < want; j++) {
        uint32_t h = hs[filled + j];
        mmsgIov_[j][0] = {&vnet_[j], kVnetHdrLen};
        mmsgIov_[j][1] = {base_ + SlotBase(h) + headroom_, maxFrame_};
        if (large != nullptr) mmsgIov_[j][2] = {base_ + SlotBase(large[k + j]) + headroom_ + maxFrame_, maxLarge_ - maxFrame_};
        struct msghdr& m = mmsg_[j].msg_hdr;
        m.msg_name = &sll_[j];
        m.msg_namelen = sizeof sll_[j];
        m.msg_iov = mmsgIov_[j];
        m.msg_iovlen = large != nullptr ? 3 : 2;
        m.msg_control = aux_[j];
        m.msg_controllen = kAuxSpace;
        m.msg_flags = 0;
        mmsg_[j].msg_len = 0;
      }
      int r = recvmmsg(fd, mmsg_, want, MSG_TRUNC | MSG_DONTWAIT, nullptr);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOTSOCK) {
          // Not (any more) a packet socket: the number was closed behind our
          // back and reused. Forget it and read it like any fd.
          MarkPacket(fd, false);
          return filled + ReadFd(env, fd, hs + filled, count - filled);
        }
        if (err == EINVAL) {
          // The kernel could not describe a frame in a virtio-net header
          // (a GSO type it has no code for): that frame is gone. Such
          // frames are super-frames, larger than a slot anyway.
          oversized_++;
          if (++dropped > count) break;
          continue;
        }
        if (filled > 0) break;  // return what we have; the error recurs next call
        throw ErrnoError(env, err, "recvmmsg");
      }
      uint32_t start = filled;
      uint32_t kStart = k;
      uint32_t limit = large != nullptr ? maxLarge_ : maxFrame_;
      for (int j = 0; j < r; j++) {
        const struct msghdr& m = mmsg_[j].msg_hdr;
        uint32_t total = mmsg_[j].msg_len;
        if (sll_[j].sll_pkttype == PACKET_OUTGOING || total < kVnetHdrLen + 14) {
          // Outgoing copies are filtered by PACKET_IGNORE_OUTGOING already
          // (this catches kernels without it); frames shorter than an
          // Ethernet header do not arrive on an Ethernet interface.
          dropped++;
          continue;
        }
        uint32_t len = total - kVnetHdrLen;
        const struct tpacket_auxdata* aux = nullptr;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(const_cast<struct msghdr*>(&m)); c != nullptr;
             c = CMSG_NXTHDR(const_cast<struct msghdr*>(&m), c)) {
          if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
              c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
            aux = reinterpret_cast<const struct tpacket_auxdata*>(CMSG_DATA(c));
          }
        }
        bool vlan = aux != nullptr && (aux->tp_status & TP_STATUS_VLAN_VALID) != 0;
        if ((m.msg_flags & MSG_TRUNC) != 0 || len > limit || (vlan && len + 4 > limit)) {
          oversized_++;
          dropped++;
          continue;
        }
        uint8_t vmeta[kMetaBytes] = {};
        memcpy(vmeta, &vnet_[j], kVnetHdrLen);
        if (!VnetValid(vmeta, len)) {
          badVnet_++;
          dropped++;
          continue;
        }
        uint32_t src = hs[start + j];
        uint32_t h = hs[filled];
        uint32_t off;
        if (len > maxFrame_ || (vlan && len + 4 > maxFrame_)) {
          // overflowed into large[kStart + j]: bring that spare to large[k]
          // (large[k .. kStart + j) are unused spares), then move the head
          uint32_t tmp = large[k];
          large[k] = large[kStart + j];
          large[kStart + j] = tmp;
          uint32_t L = large[k];
          memcpy(base_ + SlotBase(L) + headroom_, base_ + SlotBase(src) + headroom_, maxFrame_);
          hs[filled] = L;
          large[k] = h;  // h's slot is free now (its frame, if any, moved down already or is this one's head)
          k++;
          h = L;
          off = SlotBase(h) + headroom_;
        } else {
          off = SlotBase(h) + headroom_;
          if (src != h) memcpy(base_ + off, base_ + SlotBase(src) + headroom_, len);
        }
        uint8_t* frame = base_ + off;
        uint8_t* meta = MetaOf(h);
        memcpy(meta, vmeta, kMetaBytes);
        if ((meta[0] & kVnetNeedsCsum) != 0 && meta[1] == 0) {
          CompleteChecksumMeta(frame, len, meta);
          meta[0] &= static_cast<uint8_t>(~kVnetNeedsCsum);
        }
        if (vlan) {
          uint16_t tpid = (aux->tp_status & TP_STATUS_VLAN_TPID_VALID) != 0 && aux->tp_vlan_tpid != 0 ? aux->tp_vlan_tpid : ETH_P_8021Q;
          memmove(frame + 16, frame + 12, len - 12);
          frame[12] = static_cast<uint8_t>(tpid >> 8);
          frame[13] = static_cast<uint8_t>(tpid);
          frame[14] = static_cast<uint8_t>(aux->tp_vlan_tci >> 8);
          frame[15] = static_cast<uint8_t>(aux->tp_vlan_tci);
          len += 4;
          if ((meta[0] & kVnetNeedsCsum) != 0) {
            uint16_t cs;
            memcpy(&cs, meta + 6, 2);
            cs = static_cast<uint16_t>(cs + 4);
            memcpy(meta + 6, &cs, 2);
          }
          if (meta[1] != 0) {
            uint16_t hl;
            memcpy(&hl, meta + 2, 2);
            hl = static_cast<uint16_t>(hl + 4);
            memcpy(meta + 2, &hl, 2);
          }
        }
        offsets_[h] = off;
        lengths_[h] = len;
        filled++;
      }
      if (static_cast<uint32_t>(r) < want) break;  // the queue is empty (or an error waits for the next call)
      if (dropped > count) break;
    }
    *largeUsed = k;
    return filled;
  }

  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    U32View handles = HandlesArg(info, 1);
    uint32_t count = ArgU32(info, 2, "count");
    RequirePool(env);
    if (count > handles.length) ThrowRange(env, "count exceeds handles.length");
    if (count > 65535) ThrowRange(env, "count must be < 65536");
    const uint32_t* hs = handles.data;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t h = hs[i];
      if (h >= capacity_) ThrowRange(env, "handle " + std::to_string(h) + " out of range");
      if (static_cast<size_t>(offsets_[h]) + lengths_[h] > byteLength_) ThrowRange(env, "frame " + std::to_string(h) + " lies outside the pool");
    }
    uint32_t consumed = 0;
    uint32_t failed = 0;
    if (IsTapOffload(fd)) {
      WriteTapOffload(fd, hs, count, &consumed, &failed);
      return Napi::Number::New(env, static_cast<double>(consumed) + 65536.0 * failed);
    }
    if (!IsPacket(fd)) PrepareForPlainFd(hs, count);
    int rawFd = TunnelRaw(fd);
    UnixFd* u;
    if (rawFd >= 0) {
      WriteTunnel(rawFd, hs, count, &consumed, &failed);
    } else if ((u = UnixOf(fd)) != nullptr && u->kind == UnixFd::kFramed) {
      WriteFramed(fd, u, hs, count, &consumed, &failed);
    } else if (u != nullptr && u->kind == UnixFd::kDgram) {
      WriteUnixDgram(fd, u, hs, count, &consumed, &failed);
    } else if (!IsPacket(fd) || !WritePacket(fd, hs, count, &consumed, &failed)) {
      WriteFd(fd, hs, count, &consumed, &failed);
    }
    return Napi::Number::New(env, static_cast<double>(consumed) + 65536.0 * failed);
  }

  // An fd that takes no virtio-net header gets frames as a wire carries
  // them: a partial checksum is completed here; a super-frame cannot be
  // sent (the dataplane segments before it writes to such an fd), so its
  // length is zeroed and the write fails (counted noGso).
  void PrepareForPlainFd(const uint32_t* hs, uint32_t count) {
    if (meta_ == nullptr) return;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t h = hs[i];
      uint8_t* meta = meta_ + static_cast<size_t>(h) * kMetaBytes;
      if (meta[1] != 0) {
        noGso_++;
        lengths_[h] = 0;
      } else if ((meta[0] & kVnetNeedsCsum) != 0) {
        if (VnetValid(meta, lengths_[h])) CompleteChecksumMeta(base_ + offsets_[h], lengths_[h], meta);
        meta[0] &= static_cast<uint8_t>(~kVnetNeedsCsum);
      }
    }
  }

  // TAPs with offloads: one writev(2) per frame, [annotations | frame]: a
  // super-frame goes out whole (the receiving kernel takes it as GRO'd), a
  // partial checksum stays partial. The kernel checks the header (EINVAL:
  // a hard error, consumed and counted).
  void WriteTapOffload(int fd, const uint32_t* hs, uint32_t count, uint32_t* consumedOut, uint32_t* failedOut) {
    uint32_t consumed = *consumedOut;
    uint32_t failed = *failedOut;
    while (consumed < count) {
      uint32_t h = hs[consumed];
      uint8_t* meta = MetaOf(h);
      meta[10] = 0;
      meta[11] = 0;
      struct iovec iov[2] = {{meta, kMetaBytes}, {base_ + offsets_[h], lengths_[h]}};
      ssize_t r = writev(fd, iov, 2);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        failed++;
      }
      consumed++;
    }
    *consumedOut = consumed;
    *failedOut = failed;
  }

  // TAPs (and any other fd): one write(2) per frame, from *consumed on.
  void WriteFd(int fd, const uint32_t* hs, uint32_t count, uint32_t* consumedOut, uint32_t* failedOut) {
    uint32_t consumed = *consumedOut;
    uint32_t failed = *failedOut;
    while (consumed < count) {
      uint32_t h = hs[consumed];
      ssize_t r = write(fd, base_ + offsets_[h], lengths_[h]);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        failed++;  // hard error: the frame is consumed, not retried
      }
      consumed++;
    }
    *consumedOut = consumed;
    *failedOut = failed;
  }

  // Packet sockets: sendmmsg(2), up to kMmsgBatch frames per call, each as
  // [zeroed virtio-net header | frame]. sendmmsg stops at the first frame it
  // cannot send and returns how many it sent; the next call starts at that
  // frame, so its error shows as −1 there (hard: consumed and counted) or
  // EAGAIN (stop: the rest stays with the caller). Returns false (the rest
  // is for WriteFd) only when the fd turns out not to be a packet socket.
  bool WritePacket(int fd, const uint32_t* hs, uint32_t count, uint32_t* consumedOut, uint32_t* failedOut) {
    uint32_t consumed = 0;
    uint32_t failed = 0;
    bool handled = true;
    while (consumed < count) {
      uint32_t k = count - consumed < kMmsgBatch ? count - consumed : kMmsgBatch;
      for (uint32_t j = 0; j < k; j++) {
        uint32_t h = hs[consumed + j];
        // the frame's annotations are its virtio-net header: the kernel
        // segments a super-frame and completes a partial checksum
        mmsgIov_[j][0] = {MetaOf(h), kVnetHdrLen};
        mmsgIov_[j][1] = {base_ + offsets_[h], lengths_[h]};
        struct msghdr& m = mmsg_[j].msg_hdr;
        m.msg_name = nullptr;  // bound: the socket's interface and protocol
        m.msg_namelen = 0;
        m.msg_iov = mmsgIov_[j];
        m.msg_iovlen = 2;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
      }
      int r = sendmmsg(fd, mmsg_, k, MSG_DONTWAIT);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOTSOCK) {
          MarkPacket(fd, false);  // see ReadPacket; WriteFd takes the rest
          handled = false;
          break;
        }
        failed++;  // hard error (ENETDOWN, EMSGSIZE, EINVAL for < 14 bytes, ENOBUFS): consumed
        consumed++;
        continue;
      }
      consumed += static_cast<uint32_t>(r);
    }
    *consumedOut = consumed;
    *failedOut = failed;
    return handled;
  }

  // Tunnels and unix datagram sockets: recvmmsg(2), up to kMmsgBatch
  // datagrams per call, each payload straight into its slot; for a tunnel
  // (withSender) the sender goes into the 8 bytes in front of it (IPv4
  // address, UDP port, both big-endian, 2 zero bytes). A datagram longer
  // than a slot (MSG_TRUNC) is dropped and counted; as in ReadPacket, later
  // ones then move down one slot.
  uint32_t ReadDatagrams(Napi::Env env, int fd, const uint32_t* hs, uint32_t count, bool withSender) {
    uint32_t filled = 0;
    uint32_t dropped = 0;
    while (filled < count) {
      uint32_t want = count - filled < kMmsgBatch ? count - filled : kMmsgBatch;
      for (uint32_t j = 0; j < want; j++) {
        uint32_t h = hs[filled + j];
        mmsgIov_[j][0] = {base_ + SlotBase(h) + headroom_, maxFrame_};
        struct msghdr& m = mmsg_[j].msg_hdr;
        m.msg_name = withSender ? &inet_[j] : nullptr;
        m.msg_namelen = withSender ? sizeof inet_[j] : 0;
        m.msg_iov = mmsgIov_[j];
        m.msg_iovlen = 1;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        mmsg_[j].msg_len = 0;
      }
      int r = recvmmsg(fd, mmsg_, want, MSG_DONTWAIT, nullptr);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOTSOCK) {
          // Not (any more) a socket: the number was closed behind our back
          // and reused. Forget it and read it like any fd.
          MarkTunnel(fd, -1);
          TakeUnix(fd);
          return filled + ReadFd(env, fd, hs + filled, count - filled);
        }
        if (filled > 0) break;  // return what we have; the error recurs next call
        throw ErrnoError(env, err, "recvmmsg");
      }
      uint32_t start = filled;
      for (int j = 0; j < r; j++) {
        uint32_t len = mmsg_[j].msg_len;
        if ((mmsg_[j].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > maxFrame_) {
          oversized_++;
          dropped++;
          continue;
        }
        uint32_t src = hs[start + j];
        uint32_t h = hs[filled];
        uint32_t off = SlotBase(h) + headroom_;
        if (src != h) memcpy(base_ + off, base_ + SlotBase(src) + headroom_, len);
        if (withSender) {
          uint8_t* from = base_ + off - 8;  // inside the slot's headroom (≥ 8, checked)
          memcpy(from, &inet_[j].sin_addr.s_addr, 4);
          memcpy(from + 4, &inet_[j].sin_port, 2);
          from[6] = 0;
          from[7] = 0;
        }
        offsets_[h] = off;
        lengths_[h] = len;
        filled++;
      }
      if (static_cast<uint32_t>(r) < want) break;  // the queue is empty (or an error waits for the next call)
      if (dropped > count) break;
    }
    return filled;
  }

  // Tunnels: sendmmsg(2) on the paired raw socket (IP_HDRINCL), up to
  // kMmsgBatch frames per call; each frame is a whole IPv4 packet, sent to
  // the destination address in its header. A frame that is no IPv4 packet
  // (< 20 bytes, version ≠ 4, IHL < 5) fails (EINVAL) without a syscall.
  // Otherwise as WritePacket: sendmmsg stops at the first frame it cannot
  // send; the next call starts there and gets its error (hard: consumed
  // and counted, e.g. EMSGSIZE above the interface's MTU) or EAGAIN (stop).
  void WriteTunnel(int rawFd, const uint32_t* hs, uint32_t count, uint32_t* consumedOut, uint32_t* failedOut) {
    uint32_t consumed = 0;
    uint32_t failed = 0;
    while (consumed < count) {
      uint32_t k = 0;
      while (k < kMmsgBatch && consumed + k < count) {
        uint32_t h = hs[consumed + k];
        uint8_t* p = base_ + offsets_[h];
        uint32_t len = lengths_[h];
        if (len < 20 || (p[0] >> 4) != 4 || (p[0] & 15) < 5) break;  // not IPv4: ends the run
        struct sockaddr_in& dst = inet_[k];
        memset(&dst, 0, sizeof dst);
        dst.sin_family = AF_INET;
        memcpy(&dst.sin_addr.s_addr, p + 16, 4);
        mmsgIov_[k][0] = {p, len};
        struct msghdr& m = mmsg_[k].msg_hdr;
        m.msg_name = &dst;
        m.msg_namelen = sizeof dst;
        m.msg_iov = mmsgIov_[k];
        m.msg_iovlen = 1;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        k++;
      }
      if (k == 0) {
        failed++;  // not an IPv4 packet (EINVAL): consumed, no syscall
        consumed++;
        continue;
      }
      int r = sendmmsg(rawFd, mmsg_, k, MSG_DONTWAIT);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        failed++;  // hard error (EMSGSIZE, ENETUNREACH, EHOSTUNREACH, EPERM, ENOBUFS, …): consumed
        consumed++;
        continue;
      }
      consumed += static_cast<uint32_t>(r);
    }
    *consumedOut = consumed;
    *failedOut = failed;
  }

  // ---- unix sockets: QEMU's netdev stream (framed) and dgram

  // Framed streams (QEMU -netdev stream): every frame is a 4-byte
  // big-endian length and the frame. One read(2) takes as much as the socket
  // holds (up to the per-fd receive buffer); complete frames are copied out
  // of the buffer into the slots, a partial one stays buffered for the next
  // call. End of stream (the peer closed) or a read error is remembered
  // (sticky) and thrown (EOF as ECONNRESET) once every complete buffered
  // frame has been delivered; a frame cut short by the end is lost.
  uint32_t ReadFramed(Napi::Env env, int fd, UnixFd* u, const uint32_t* hs, uint32_t count) {
    if (count == 0) return 0;
    const uint32_t limit = maxFrame_ < kStreamMaxFrame ? maxFrame_ : kStreamMaxFrame;
    uint8_t* buf = u->rx.get();
    uint32_t filled = CutFrames(u, hs, count, limit);
    while (filled < count) {
      if (u->rxErr != 0) {
        if (filled > 0) break;  // the error comes with the next call
        throw ErrnoError(env, u->rxErr, u->rxErr == ECONNRESET ? "read (the peer closed the stream)" : "read");
      }
      // keep only the partial frame, at the front (< 64 KiB: cheap)
      uint32_t avail = u->rxEnd - u->rxStart;
      if (u->rxStart > 0) {
        if (avail > 0) memmove(buf, buf + u->rxStart, avail);
        u->rxStart = 0;
        u->rxEnd = avail;
      }
      size_t space = kStreamRxCap - u->rxEnd;
      ssize_t r = read(fd, buf + u->rxEnd, space);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        u->rxErr = err;  // thrown above, or with the next call when frames were cut
        continue;
      }
      if (r == 0) {
        u->rxErr = ECONNRESET;  // EOF: the peer is gone
        continue;
      }
      u->rxEnd += static_cast<uint32_t>(r);
      filled += CutFrames(u, hs + filled, count - filled, limit);
      // A short read drained the socket (a stream read takes all it holds):
      // stop without a read that would only say EAGAIN.
      if (static_cast<size_t>(r) < space) break;
    }
    return filled;
  }

  // Cuts up to `count` complete frames out of a framed stream's receive
  // buffer into the slots of hs[0..); returns how many. A length of 0 or
  // above `limit` is a protocol error: counted (oversized), and that
  // frame's bytes are skipped (now or as they arrive), so the stream stays
  // in sync.
  uint32_t CutFrames(UnixFd* u, const uint32_t* hs, uint32_t count, uint32_t limit) {
    const uint8_t* buf = u->rx.get();
    uint32_t filled = 0;
    while (filled < count) {
      uint32_t avail = u->rxEnd - u->rxStart;
      if (u->rxSkip > 0) {
        uint32_t k = u->rxSkip < avail ? static_cast<uint32_t>(u->rxSkip) : avail;
        u->rxStart += k;
        u->rxSkip -= k;
        if (u->rxSkip > 0) break;
        continue;
      }
      if (avail < 4) break;
      const uint8_t* p = buf + u->rxStart;
      uint32_t len = (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
                     (static_cast<uint32_t>(p[2]) << 8) | p[3];
      if (len == 0 || len > limit) {
        oversized_++;
        u->rxStart += 4;
        u->rxSkip = len;
        continue;
      }
      if (avail - 4 < len) break;  // partial: the rest comes later
      uint32_t h = hs[filled];
      uint32_t off = SlotBase(h) + headroom_;
      memcpy(base_ + off, p + 4, len);
      offsets_[h] = off;
      lengths_[h] = len;
      filled++;
      u->rxStart += 4 + len;
    }
    if (u->rxStart == u->rxEnd) u->rxStart = u->rxEnd = 0;
    return filled;
  }

  // Framed streams: sendmsg(2) (MSG_NOSIGNAL) with up to kStreamBatch
  // frames per call, each as two iovecs (its length prefix, the frame in the
  // pool), preceded by the pending tail of an earlier call if any. The
  // bytes written are walked frame by frame: frames written whole are
  // consumed; a frame written in part has its unwritten tail copied into
  // the pending buffer and is consumed too, and the call stops (the socket
  // is full). EAGAIN stops the call (the rest stays with the caller).
  // A frame of 0 or > 65535 bytes cannot be framed: it fails (consumed)
  // without a syscall. Any other error (EPIPE, ECONNRESET, …: the peer is
  // gone) fails every frame left and drops the pending bytes. With count 0
  // the call only flushes the pending bytes.
  void WriteFramed(int fd, UnixFd* u, const uint32_t* hs, uint32_t count, uint32_t* consumedOut, uint32_t* failedOut) {
    uint32_t consumed = 0;
    uint32_t failed = 0;
    while (consumed < count || u->txLen > u->txOff) {
      int niov = 0;
      uint32_t pend = u->txLen - u->txOff;
      if (pend > 0) streamIov_[niov++] = {u->tx.get() + u->txOff, pend};
      uint32_t k = 0;
      while (k < kStreamBatch && consumed + k < count) {
        uint32_t h = hs[consumed + k];
        uint32_t len = lengths_[h];
        if (len == 0 || len > kStreamMaxFrame) break;  // ends the run
        uint8_t* hdr = streamHdr_[k];
        hdr[0] = static_cast<uint8_t>(len >> 24);
        hdr[1] = static_cast<uint8_t>(len >> 16);
        hdr[2] = static_cast<uint8_t>(len >> 8);
        hdr[3] = static_cast<uint8_t>(len);
        streamIov_[niov++] = {hdr, 4};
        streamIov_[niov++] = {base_ + offsets_[h], len};
        k++;
      }
      if (niov == 0) {
        failed++;  // cannot be framed (EINVAL / EMSGSIZE): consumed, no syscall
        consumed++;
        continue;
      }
      struct msghdr m;
      memset(&m, 0, sizeof m);
      m.msg_iov = streamIov_;
      m.msg_iovlen = static_cast<size_t>(niov);
      ssize_t r = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        // the connection is gone (EPIPE, ECONNRESET, ENOTCONN, …)
        u->txOff = 0;
        u->txLen = 0;
        failed += count - consumed;
        consumed = count;
        break;
      }
      size_t w = static_cast<size_t>(r);
      if (pend > 0) {
        if (w < pend) {
          u->txOff += static_cast<uint32_t>(w);
          break;  // not even the pending bytes went out: the socket is full
        }
        w -= pend;
        u->txOff = 0;
        u->txLen = 0;
      }
      uint32_t j = 0;
      while (j < k) {
        size_t whole = 4 + static_cast<size_t>(lengths_[hs[consumed + j]]);
        if (w < whole) break;
        w -= whole;
        j++;
      }
      if (j < k) {
        if (w > 0) {
          // frame j went out in part: its tail waits in the pending buffer
          uint32_t h = hs[consumed + j];
          uint32_t len = lengths_[h];
          uint8_t* dst = u->tx.get();
          uint32_t n = 0;
          if (w < 4) {
            memcpy(dst, streamHdr_[j] + w, 4 - w);
            n = static_cast<uint32_t>(4 - w);
            memcpy(dst + n, base_ + offsets_[h], len);
            n += len;
          } else {
            n = static_cast<uint32_t>(len - (w - 4));
            memcpy(dst, base_ + offsets_[h] + (w - 4), n);
          }
          u->txOff = 0;
          u->txLen = n;
          j++;
        }
        consumed += j;
        break;  // the socket is full
      }
      consumed += j;
    }
    if (u->txLen > u->txOff && u->watcher != nullptr) SetWritable(u->watcher, true);
    *consumedOut = consumed;
    *failedOut = failed;
  }

  // Unix datagram sockets (QEMU -netdev dgram): sendmmsg(2), up to
  // kMmsgBatch frames per call, each one datagram to the remembered remote
  // path. EAGAIN (the peer's queue is full) stops the batch. While the peer
  // is not there (ENOENT: no socket file; ECONNREFUSED: a file nobody is
  // bound to) every frame left fails at once (one syscall, not one per
  // frame). Other errors (EMSGSIZE, ENOBUFS, EACCES, EPERM, …) fail the
  // frame sendmmsg stopped at and the batch goes on.
  void WriteUnixDgram(int fd, UnixFd* u, const uint32_t* hs, uint32_t count, uint32_t* consumedOut, uint32_t* failedOut) {
    uint32_t consumed = 0;
    uint32_t failed = 0;
    while (consumed < count) {
      uint32_t k = count - consumed < kMmsgBatch ? count - consumed : kMmsgBatch;
      for (uint32_t j = 0; j < k; j++) {
        uint32_t h = hs[consumed + j];
        mmsgIov_[j][0] = {base_ + offsets_[h], lengths_[h]};
        struct msghdr& m = mmsg_[j].msg_hdr;
        m.msg_name = &u->remote;
        m.msg_namelen = u->remoteLen;
        m.msg_iov = mmsgIov_[j];
        m.msg_iovlen = 1;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
      }
      int r = sendmmsg(fd, mmsg_, k, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOENT || err == ECONNREFUSED) {
          failed += count - consumed;  // the peer is not there (yet)
          consumed = count;
          break;
        }
        failed++;  // hard error: consumed
        consumed++;
        continue;
      }
      consumed += static_cast<uint32_t>(r);
    }
    *consumedOut = consumed;
    *failedOut = failed;
  }

  // ---- devices

  Napi::Value OpenTap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsString()) ThrowType(env, "name must be a string");
      name = info[0].As<Napi::String>().Utf8Value();
    }
    if (name.size() >= IFNAMSIZ) ThrowRange(env, "interface name longer than 15 bytes: " + name);
    bool vnetHdr = false;
    bool offload = false;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Value v = info[1].As<Napi::Object>().Get("vnetHdr");
      vnetHdr = v.ToBoolean().Value();
      offload = info[1].As<Napi::Object>().Get("offload").ToBoolean().Value();
      if (offload) vnetHdr = true;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw ErrnoError(env, errno, "open /dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0);
    if (!name.empty()) memcpy(ifr.ifr_name, name.data(), name.size());
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int err = errno;
      ::close(fd);
      throw ErrnoError(env, err, "ioctl TUNSETIFF");
    }
    if (vnetHdr) {
      int sz = 12;  // struct virtio_net_hdr_mrg_rxbuf (the kernel default is 10)
      if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
        int err = errno;
        ::close(fd);
        throw ErrnoError(env, err, "ioctl TUNSETVNETHDRSZ");
      }
    }
    // Offloads: the kernel side may hand us partial checksums and TCP (and,
    // where the kernel has it, UDP) super-frames, and takes them from us.
    // USO (Linux 6.2) is tried first and left out where it is refused.
    unsigned int offloads = 0;
    if (offload) {
      const unsigned int base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
#ifdef TUN_F_USO4
      const unsigned int uso = TUN_F_USO4 | TUN_F_USO6;
#else
      const unsigned int uso = 0x20 | 0x40;
#endif
      if (ioctl(fd, TUNSETOFFLOAD, base | uso) == 0) {
        offloads = base | uso;
      } else if (ioctl(fd, TUNSETOFFLOAD, base) == 0) {
        offloads = base;
      } else {
        int err = errno;
        ::close(fd);
        throw ErrnoError(env, err, "ioctl TUNSETOFFLOAD");
      }
    }
    ifr.ifr_name[IFNAMSIZ - 1] = 0;
    ClaimFd(fd);  // a reused number is neither a packet socket nor a tunnel nor a unix socket any more
    if (offload) MarkTapOffload(fd, true);
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, fd));
    out.Set("name", Napi::String::New(env, ifr.ifr_name));
    out.Set("offloads", Napi::Number::New(env, offloads));
    return out;
  }

  Napi::Value OpenPacket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) ThrowType(env, "ifname must be a string");
    std::string ifname = info[0].As<Napi::String>().Utf8Value();
    if (ifname.empty() || ifname.size() >= IFNAMSIZ) ThrowRange(env, "interface name must be 1 to 15 bytes: '" + ifname + "'");
    std::string netns;
    bool promisc = false;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object opts = info[1].As<Napi::Object>();
      Napi::Value ns = opts.Get("netns");
      if (!ns.IsUndefined() && !ns.IsNull()) netns = NetnsPath(env, ns);
      promisc = opts.Get("promisc").ToBoolean().Value();
    }
    PacketOpenResult res;
    if (netns.empty()) {
      res = OpenPacketHere(ifname, promisc);
    } else {
      try {
        res = OpenPacketIn(netns, ifname, promisc);
      } catch (const std::system_error& e) {  // the thread could not be started
        throw Napi::Error::New(env, std::string("usernet: cannot start a thread to enter ") + netns + ": " + e.what());
      }
    }
    if (res.hwType >= 0) {
      Napi::Error e = Napi::Error::New(env, "usernet: " + ifname + " is not an Ethernet interface (ARPHRD " + std::to_string(res.hwType) + ")");
      e.Set("code", Napi::String::New(env, "EPROTONOSUPPORT"));
      throw e;
    }
    if (res.fd < 0) {
      std::string where = std::string(res.syscall) + " '" + (res.nsStep ? netns : ifname) + "'";
      throw ErrnoError(env, res.err, where.c_str());
    }
    ClaimFd(res.fd);  // a reused number is not a tunnel or unix socket any more
    MarkPacket(res.fd, true);
    double mac = 0;
    for (int i = 0; i < 6; i++) mac = mac * 256 + res.mac[i];
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, res.fd));
    out.Set("ifindex", Napi::Number::New(env, res.ifindex));
    out.Set("mac", Napi::Number::New(env, mac));
    return out;
  }

  // openSocketIn(netns, type, ip, port) -> fd (see src/io/native.ts).
  Napi::Value OpenSocketIn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string netns = NetnsPath(env, info[0]);
    if (!info[1].IsString()) ThrowType(env, "type must be 'udp' or 'tcp'");
    std::string typeName = info[1].As<Napi::String>().Utf8Value();
    int type;
    if (typeName == "udp") {
      type = SOCK_DGRAM;
    } else if (typeName == "tcp") {
      type = SOCK_STREAM;
    } else {
      ThrowType(env, "type must be 'udp' or 'tcp', not '" + typeName + "'");
    }
    std::string ip;
    int port;
    struct sockaddr_in addr = InetAddrArg(env, info[2], info[3], &ip, &port);
    InetOpenResult res;
    RunInNetnsOrThrow(env, netns, [&]() { res = OpenInetHere(type, addr); });
    if (res.fd < 0) {
      std::string where = std::string(res.syscall) + " " + typeName + " " + ip + ":" + std::to_string(port) + " in '" + netns + "'";
      Napi::Error e = ErrnoError(env, res.err, where.c_str());
      e.Set("address", Napi::String::New(env, ip));
      e.Set("port", Napi::Number::New(env, port));
      throw e;
    }
    ClaimFd(res.fd);  // a reused number is not a packet socket, tunnel or unix socket any more
    return Napi::Number::New(env, res.fd);
  }

  // ip (dotted IPv4) and port ([0, 65535]) arguments as a sockaddr_in.
  static struct sockaddr_in InetAddrArg(Napi::Env env, const Napi::Value& ipV, const Napi::Value& portV, std::string* ipOut, int* portOut) {
    if (!ipV.IsString()) ThrowType(env, "ip must be a string");
    std::string ip = ipV.As<Napi::String>().Utf8Value();
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) ThrowType(env, "ip must be an IPv4 address, not '" + ip + "'");
    if (!portV.IsNumber()) ThrowType(env, "port must be a number");
    double port = portV.As<Napi::Number>().DoubleValue();
    if (!(port >= 0 && port <= 65535) || port != static_cast<double>(static_cast<int>(port))) {
      ThrowRange(env, "port must be an integer in [0, 65535]");
    }
    addr.sin_port = htons(static_cast<uint16_t>(port));
    *ipOut = ip;
    *portOut = static_cast<int>(port);
    return addr;
  }

  // openTunnel(ip, port, {netns}) -> {fd, port} (see src/io/native.ts).
  Napi::Value OpenTunnel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string ip;
    int port;
    struct sockaddr_in addr = InetAddrArg(env, info[0], info[1], &ip, &port);
    std::string netns;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Value ns = info[2].As<Napi::Object>().Get("netns");
      if (!ns.IsUndefined() && !ns.IsNull()) netns = NetnsPath(env, ns);
    }
    TunnelOpenResult res;
    if (netns.empty()) {
      res = OpenTunnelHere(addr);
    } else {
      RunInNetnsOrThrow(env, netns, [&]() { res = OpenTunnelHere(addr); });
    }
    if (res.fd < 0) {
      std::string where = std::string(res.syscall) + " " + ip + ":" + std::to_string(port);
      if (!netns.empty()) where += " in '" + netns + "'";
      Napi::Error e = ErrnoError(env, res.err, where.c_str());
      e.Set("address", Napi::String::New(env, ip));
      e.Set("port", Napi::Number::New(env, port));
      throw e;
    }
    // reused numbers: neither is a packet socket, a tunnel or a unix socket any more
    ClaimFd(res.fd);
    ClaimFd(res.rawFd);
    MarkTunnel(res.fd, res.rawFd);
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, res.fd));
    out.Set("port", Napi::Number::New(env, res.port));
    return out;
  }

  // ---- unix socket openers

  // A socket path argument (1..107 bytes, no NUL) as a sockaddr_un.
  static std::string UnixPathArg(Napi::Env env, const Napi::Value& v, const char* what, struct sockaddr_un* addr, socklen_t* len) {
    if (!v.IsString()) ThrowType(env, std::string(what) + " must be a string");
    std::string path = v.As<Napi::String>().Utf8Value();
    if (path.find('\0') != std::string::npos) ThrowType(env, std::string(what) + " must not contain NUL");
    if (path.empty() || path.size() >= sizeof addr->sun_path) {
      ThrowRange(env, std::string(what) + " must be 1 to " + std::to_string(sizeof addr->sun_path - 1) + " bytes: '" + path + "'");
    }
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path.data(), path.size());
    *len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
    return path;
  }

  // An errno-shaped error for a step on a socket path: syscall "STEP 'PATH'", .path set.
  static Napi::Error PathError(Napi::Env env, int err, const char* step, const std::string& path) {
    std::string where = std::string(step) + " '" + path + "'";
    Napi::Error e = ErrnoError(env, err, where.c_str());
    e.Set("path", Napi::String::New(env, path));
    return e;
  }

  // Unlinks path if it is the socket file this fd made (same dev/ino): never
  // a file someone else has put there since.
  static void UnlinkOwn(const UnixFd& u) {
    if (u.path.empty()) return;
    struct stat st;
    if (lstat(u.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == u.dev && st.st_ino == u.ino) {
      unlink(u.path.c_str());
    }
  }

  // A unix socket of `type` bound to path: non-blocking, close-on-exec; a
  // stale socket file at path is unlinked first (any other file is left
  // alone: bind then fails with EADDRINUSE); the new file gets mode 0600;
  // a stream socket also listens. Fills u->path/dev/ino. Throws (nothing
  // left open or on disk) on failure.
  int BindUnix(Napi::Env env, int type, const std::string& path, const struct sockaddr_un& addr, socklen_t len, UnixFd* u) {
    int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw PathError(env, errno, "socket unix", path);
    bool bound = false;
    auto fail = [&](const char* step) {
      int err = errno;
      if (bound) unlink(path.c_str());
      ::close(fd);
      return PathError(env, err, step, path);
    };
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && unlink(path.c_str()) < 0 && errno != ENOENT) {
      throw fail("unlink stale socket");
    }
    if (bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) < 0) throw fail("bind unix");
    bound = true;
    if (chmod(path.c_str(), 0600) < 0) throw fail("chmod");
    if (lstat(path.c_str(), &st) < 0) throw fail("lstat");
    if (type == SOCK_STREAM && listen(fd, 16) < 0) throw fail("listen unix");
    u->path = path;
    u->dev = st.st_dev;
    u->ino = st.st_ino;
    return fd;
  }

  // openUnixDgram(localPath, remotePath) -> {fd} (see src/io/native.ts).
  Napi::Value OpenUnixDgram(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct sockaddr_un local;
    socklen_t localLen;
    std::string localPath = UnixPathArg(env, info[0], "localPath", &local, &localLen);
    std::unique_ptr<UnixFd> u(new UnixFd());
    u->kind = UnixFd::kDgram;
    UnixPathArg(env, info[1], "remotePath", &u->remote, &u->remoteLen);
    int fd = BindUnix(env, SOCK_DGRAM, localPath, local, localLen, u.get());
    RaiseBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
    RaiseBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
    ClaimFd(fd);
    SetUnix(fd, std::move(u));
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, fd));
    return out;
  }

  // listenUnixStream(path) -> {fd} (see src/io/native.ts).
  Napi::Value ListenUnixStream(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct sockaddr_un addr;
    socklen_t len;
    std::string path = UnixPathArg(env, info[0], "path", &addr, &len);
    std::unique_ptr<UnixFd> u(new UnixFd());
    u->kind = UnixFd::kListener;
    int fd = BindUnix(env, SOCK_STREAM, path, addr, len, u.get());
    ClaimFd(fd);
    SetUnix(fd, std::move(u));
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, fd));
    return out;
  }

  // acceptUnixStream(listenFd) -> {fd} | null (see src/io/native.ts).
  Napi::Value AcceptUnixStream(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int lfd = ArgFd(info, 0);
    UnixFd* l = UnixOf(lfd);
    int fd;
    for (;;) {
      fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) break;
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return env.Null();
      if (l != nullptr && !l->path.empty()) throw PathError(env, err, "accept unix", l->path);
      throw ErrnoError(env, err, "accept");
    }
    std::unique_ptr<UnixFd> u;
    try {
      u.reset(new UnixFd());
      u->rx.reset(new uint8_t[kStreamRxCap]);
      u->tx.reset(new uint8_t[kStreamTxCap]);
    } catch (const std::bad_alloc&) {
      ::close(fd);
      throw Napi::Error::New(env, "usernet: out of memory for a stream's buffers");
    }
    u->kind = UnixFd::kFramed;
    RaiseBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
    RaiseBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
    ClaimFd(fd);
    SetUnix(fd, std::move(u));
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, fd));
    return out;
  }

  void Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    MarkPacket(fd, false);
    MarkTapOffload(fd, false);
    int rawFd = TunnelRaw(fd);
    MarkTunnel(fd, -1);
    std::unique_ptr<UnixFd> u = TakeUnix(fd);
    // A watcher must never outlive its fd (the number could be reused).
    std::vector<uint32_t> ids;
    for (auto& kv : watchers_) if (kv.second->fd == fd) ids.push_back(kv.first);
    for (uint32_t id : ids) StopWatcher(id);
    if (rawFd >= 0) ::close(rawFd);  // a tunnel: its send socket goes with it
    if (u) UnlinkOwn(*u);            // a bound unix socket: its file goes with it
    if (::close(fd) < 0 && errno != EINTR) throw ErrnoError(env, errno, "close");
  }

  // ---- readiness

  Napi::Value PollStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    if (!info[1].IsFunction()) ThrowType(env, "cb must be a function");
    if (loopState_->tearingDown) throw Napi::Error::New(env, "usernet: environment is shutting down");
    Watcher* w = new Watcher();
    w->env = env;
    w->loopState = loopState_;
    w->fd = fd;
    UnixFd* u = UnixOf(fd);
    w->rearmOnError = IsPacket(fd) || TunnelRaw(fd) >= 0 || (u != nullptr && u->kind == UnixFd::kDgram);
    w->handle.data = w;
    int rc = uv_poll_init(loopState_->loop, &w->handle, fd);
    if (rc < 0) {
      delete w;  // uv_poll_init failed before registering the handle
      Napi::Error e = Napi::Error::New(env, std::string(uv_err_name(rc)) + ": " + uv_strerror(rc) + ", uv_poll_init");
      e.Set("code", Napi::String::New(env, uv_err_name(rc)));
      e.Set("syscall", Napi::String::New(env, "uv_poll_init"));
      throw e;
    }
    bool pending = u != nullptr && u->kind == UnixFd::kFramed && u->txLen > u->txOff;
    rc = uv_poll_start(&w->handle, pending ? (UV_READABLE | UV_WRITABLE) : UV_READABLE, OnPoll);
    if (rc < 0) {
      loopState_->closing++;
      uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnWatcherClosed);
      Napi::Error e = Napi::Error::New(env, std::string(uv_err_name(rc)) + ": " + uv_strerror(rc) + ", uv_poll_start");
      e.Set("code", Napi::String::New(env, uv_err_name(rc)));
      e.Set("syscall", Napi::String::New(env, "uv_poll_start"));
      throw e;
    }
    napi_value resourceName;
    napi_create_string_utf8(env, "usernet:poll", NAPI_AUTO_LENGTH, &resourceName);
    napi_async_init(env, nullptr, resourceName, &w->asyncContext);
    w->cb = Napi::Persistent(info[1].As<Napi::Function>());
    w->id = nextWatcherId_++;
    watchers_[w->id] = w;
    if (u != nullptr && u->kind == UnixFd::kFramed) {
      // a framed stream's watcher also flushes its pending bytes when writable
      w->framed = u;
      w->writable = pending;
      u->watcher = w;
    }
    return Napi::Number::New(env, w->id);
  }

  void PollStop(const Napi::CallbackInfo& info) {
    uint32_t id = ArgU32(info, 0, "id");
    if (!StopWatcher(id)) ThrowRange(info.Env(), "unknown watcher id " + std::to_string(id));
  }

  // Releases the JS references now (the env is alive) and frees the uv
  // handle in its close callback.
  bool StopWatcher(uint32_t id) {
    auto it = watchers_.find(id);
    if (it == watchers_.end()) return false;
    Watcher* w = it->second;
    watchers_.erase(it);
    ReleaseWatcher(w);
    return true;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("oversized", Napi::Number::New(env, oversized_));
    out.Set("badVnet", Napi::Number::New(env, badVnet_));
    out.Set("noGso", Napi::Number::New(env, noGso_));
    out.Set("watchers", Napi::Number::New(env, static_cast<double>(watchers_.size())));
    return out;
  }

  static void AsyncCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    Usernet* self = static_cast<Usernet*>(arg);
    LoopState* ls = self->loopState_;
    ls->tearingDown = true;
    for (auto& kv : self->watchers_) ReleaseWatcher(kv.second);
    self->watchers_.clear();
    MaybeFinishTeardown(ls);  // frees ls now if nothing is closing
  }
};

}  // namespace

NODE_API_ADDON(Usernet)
