// usernet native addon: UDP tunnels (the VXLAN underlay). Datagram
// payloads come in on a UDP socket; whole IPv4 packets go out on a paired
// raw socket.
//
// Contract (src/io/native.ts has the whole text):
// - openTunnel(ip, port, opts) opens a pair of sockets, both non-blocking
//   and close-on-exec, in the calling process's network namespace or, with
//   opts.netns (a path or an `ip netns` name), in that namespace (made by a
//   helper thread as in openSocketIn):
//   - a UDP socket bound to ip:port (ip may be '0.0.0.0'; port 0: the
//     kernel picks), SO_REUSEADDR, receive buffer raised to 4 MiB where
//     allowed. It receives.
//   - a send-only raw socket (AF_INET, SOCK_RAW, IPPROTO_RAW: IP_HDRINCL
//     implied; it never receives), send buffer raised to 4 MiB the same
//     way. It sends.
//   Returns { fd, port }: fd is the UDP socket's (the handle for every other
//   call), port the bound port. close(fd) stops any watcher and closes both
//   (not fs.closeSync: that would leave the raw socket open).
//   Errors: errno-shaped, syscall naming the step and the address (e.g.
//   'EADDRINUSE' with syscall "bind udp 10.0.0.1:4789 in '/run/netns/X'",
//   .address/.port set; 'EPERM' at "socket raw …" without CAP_NET_RAW;
//   'ENOENT' with syscall "open netns '/run/netns/X'"); nothing stays open
//   after a failure. TypeError for an ip that is not dotted IPv4 or a netns
//   that is not a string, RangeError for a port outside [0, 65535] or an
//   empty netns.
// - readBatch(fd, handles, count): recvmmsg(2) on the UDP socket, up to 64
//   datagrams per syscall (more loop), until `count` or EAGAIN. Each
//   datagram's payload lands at offsets[h] = h*slotSize + headroom,
//   lengths[h] = payload bytes (an empty datagram gives 0). The sender sits
//   in the 8 bytes just before offsets[h], inside the headroom: its IPv4
//   address (4 bytes, big-endian), its UDP source port (2 bytes,
//   big-endian), 2 zero bytes. Needs headroom ≥ 8 (RangeError otherwise). A
//   datagram longer than slotSize − headroom (MSG_TRUNC) is dropped and
//   counted in stats().oversized. Other errors: an errno-shaped Error
//   (syscall 'recvmmsg') unless some datagrams were read.
// - writeBatch(fd, handles, count): sendmmsg(2) on the paired raw socket,
//   up to 64 frames per syscall (more loop). Each frame is a complete IPv4
//   packet starting with its header, sent to the destination address in it
//   (bytes 16..19) without any fragmentation. Return contract as for TAPs:
//   consumed + 65536 * failed. Hard errors consume the frame and count as
//   failed, and the batch goes on: a frame shorter than 20 bytes, not IP
//   version 4 or with IHL < 5 (EINVAL, checked here, no syscall); EMSGSIZE;
//   ENETUNREACH / EHOSTUNREACH; EPERM; ENOBUFS; any other errno but EINTR
//   (retried). EAGAIN stops the batch.
// - pollStart(fd, cb) watches the UDP socket's readability; like a packet
//   socket's, the watcher is re-armed after an error condition.

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "open.h"

namespace usernet {

namespace {

class TunnelDevice : public Device {
 public:
  TunnelDevice(int fd, int rawFd) : Device(fd, Kind::kTunnel), rawFd_(rawFd) {}

  bool RearmOnError() const override { return true; }

  ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* /*large*/, uint32_t /*largeCount*/) override {
    // the sender's address goes into the 8 bytes in front of the payload
    if (c.headroom < 8) {
      ReadResult out;
      out.range = "a tunnel needs a pool headroom of at least 8 bytes";
      return out;
    }
    return ReadDatagrams(c, fd_, hs, count, true);
  }

  // sendmmsg(2) on the paired raw socket (IP_HDRINCL), up to kMmsgBatch
  // frames per call; each frame is a whole IPv4 packet, sent to the
  // destination address in its header. A frame that is no IPv4 packet
  // (< 20 bytes, version ≠ 4, IHL < 5) fails (EINVAL) without a syscall.
  // sendmmsg stops at the first frame it cannot send; the next call starts
  // there and gets its error (hard: consumed and counted, e.g. EMSGSIZE
  // above the interface's MTU) or EAGAIN (stop).
  WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) override {
    PrepareForPlainFd(c, hs, count);
    WriteResult w;
    while (w.consumed < count) {
      uint32_t k = 0;
      while (k < kMmsgBatch && w.consumed + k < count) {
        uint32_t h = hs[w.consumed + k];
        uint8_t* p = c.base + c.offsets[h];
        uint32_t len = c.lengths[h];
        if (len < 20 || (p[0] >> 4) != 4 || (p[0] & 15) < 5) break;  // not IPv4: ends the run
        struct sockaddr_in& dst = c.inet[k];
        memset(&dst, 0, sizeof dst);
        dst.sin_family = AF_INET;
        memcpy(&dst.sin_addr.s_addr, p + 16, 4);
        c.mmsgIov[k][0] = {p, len};
        struct msghdr& m = c.mmsg[k].msg_hdr;
        m.msg_name = &dst;
        m.msg_namelen = sizeof dst;
        m.msg_iov = c.mmsgIov[k];
        m.msg_iovlen = 1;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        k++;
      }
      if (k == 0) {
        w.failed++;  // not an IPv4 packet (EINVAL): consumed, no syscall
        w.consumed++;
        continue;
      }
      int r = sendmmsg(rawFd_, c.mmsg, k, MSG_DONTWAIT);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        w.failed++;  // hard error (EMSGSIZE, ENETUNREACH, EHOSTUNREACH, EPERM, ENOBUFS, …): consumed
        w.consumed++;
        continue;
      }
      w.consumed += static_cast<uint32_t>(r);
    }
    return w;
  }

  // the send socket goes with the UDP one
  int Close() override {
    ::close(rawFd_);
    return Device::Close();
  }

 private:
  const int rawFd_;  // the send-only raw socket
};

struct TunnelOpenResult {
  int fd = -1;     // the UDP socket (receives)
  int rawFd = -1;  // the raw socket (sends whole IPv4 packets)
  uint16_t port = 0;  // the bound port (host order; the kernel's pick for 0)
  int err = 0;
  const char* syscall = nullptr;
};

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

}  // namespace

Napi::Value OpenTunnel(const Napi::CallbackInfo& info, DeviceTable& devices) {
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
  devices.Claim(res.rawFd);
  devices.Set(std::unique_ptr<Device>(new TunnelDevice(res.fd, res.rawFd)));
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, res.fd));
  out.Set("port", Napi::Number::New(env, res.port));
  return out;
}

}  // namespace usernet
