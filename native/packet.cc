// usernet native addon: AF_PACKET sockets (macvlan/ipvlan parents, the
// uplink, `--iface`).
//
// Contract (src/io/native.ts has the whole text):
// - openPacket(ifname, opts) opens an AF_PACKET socket (SOCK_RAW, protocol
//   ETH_P_ALL) bound to the Ethernet interface `ifname` (by ifindex), in the
//   calling process's network namespace or, with opts.netns (a path such as
//   /proc/PID/ns/net, or a bare name meaning /run/netns/NAME), in that
//   namespace (a helper thread setns(2)s there just to open it). Non-blocking,
//   close-on-exec, PACKET_IGNORE_OUTGOING (kernel ≥ 4.20; readBatch also
//   drops PACKET_OUTGOING frames itself), receive buffer raised to 4 MiB
//   where allowed. opts.promisc adds a PACKET_MR_PROMISC membership.
//   Returns the fd, the ifindex and the interface's MAC as a 48-bit number
//   (first byte most significant). Throws an errno-shaped Error (e.g. code
//   'ENODEV', syscall 'ioctl SIOCGIFINDEX …') when the interface does not
//   exist, 'EPROTONOSUPPORT' when it is not Ethernet, RangeError for a name
//   that is empty or > 15 bytes. Close it with close(fd).
// - readBatch/writeBatch keep the TAP contract, with these differences:
//   - recvmmsg(2) / sendmmsg(2), up to 64 frames per syscall (more loop).
//   - Only frames arriving on the interface are read, never ones leaving it.
//   - Frames are delivered as they were on the wire: a VLAN tag the kernel
//     took out is put back in (from PACKET_AUXDATA); a partial checksum on
//     a frame that is no super-frame is completed (PACKET_VNET_HDR gives the
//     offsets). The header itself never reaches the pool: it becomes the
//     frame's annotations; offsets[h] is h*slotSize + headroom as for a TAP.
//   - Large spares (readBatch's 4th and 5th arguments) as for a TAP with
//     offloads: a GRO'd super-frame lands in a large slot. A frame longer
//     than a slot (MSG_TRUNC gives the real length), or one that would be
//     after its VLAN tag is put back, is dropped and counted in
//     stats().oversized; a malformed header counts stats().badVnet.
//   - writeBatch sends meta(h) as the PACKET_VNET_HDR header: the kernel
//     segments super-frames and completes partial checksums.
//   - Errors: when the interface goes down the socket reports ENETDOWN once
//     (readBatch throws it, or a writeBatch that gets there first counts it
//     as a failed frame); the socket stays bound and receives again when
//     the link is up, so its watcher survives the error condition (re-armed
//     after cb). writeBatch hard errors: ENETDOWN, EINVAL (< 14 bytes),
//     EMSGSIZE, ENOBUFS; EAGAIN stops the batch.

#include <errno.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "open.h"

namespace usernet {

namespace {

// Every packet socket the addon opens has PACKET_VNET_HDR on: each frame
// read or written is preceded by a virtio-net header, kept outside the pool
// slot (a separate iovec); on receive it becomes the frame's annotations.
class PacketDevice : public Device {
 public:
  explicit PacketDevice(int fd) : Device(fd, Kind::kPacket) {}

  bool RearmOnError() const override { return true; }

  // recvmmsg(2), up to kMmsgBatch frames per call, each into [virtio-net
  // header | slot (| tail of a large spare)]. Per frame: sll_pkttype (our
  // own direction is dropped), MSG_TRUNC (the real length: too long for a
  // slot → dropped and counted), the header (a partial checksum is
  // completed) and the PACKET_AUXDATA control message (a VLAN tag the
  // kernel took out of the frame, as NICs and veth do with tx-vlan offload,
  // is put back in). Frames dropped mid-batch leave a gap: later frames
  // move down one slot (a copy, on that rare path only) so handles[0..n)
  // stay the filled ones.
  ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* large, uint32_t largeCount) override {
    ReadResult out;
    uint32_t filled = 0;
    uint32_t dropped = 0;
    uint32_t k = 0;  // large spares used (large[0..k))
    // no spare left (the pool's large slots are all in use): read as without
    // offloads, dropping super-frames as oversized, rather than not reading
    // at all (the socket would stay readable and the loop spin)
    if (largeCount == 0) large = nullptr;
    while (filled < count) {
      uint32_t want = count - filled < kMmsgBatch ? count - filled : kMmsgBatch;
      // every frame of the call gets a tail in its own spare (large[k + j])
      if (large != nullptr) {
        if (k == largeCount) break;
        if (want > largeCount - k) want = largeCount - k;
      }
      for (uint32_t j = 0; j < want; j++) {
        uint32_t h = hs[filled + j];
        c.mmsgIov[j][0] = {&c.vnet[j], kVnetHdrLen};
        c.mmsgIov[j][1] = {c.base + c.SlotBase(h) + c.headroom, c.maxFrame};
        if (large != nullptr) c.mmsgIov[j][2] = {c.base + c.SlotBase(large[k + j]) + c.headroom + c.maxFrame, c.maxLarge - c.maxFrame};
        struct msghdr& m = c.mmsg[j].msg_hdr;
        m.msg_name = &c.sll[j];
        m.msg_namelen = sizeof c.sll[j];
        m.msg_iov = c.mmsgIov[j];
        m.msg_iovlen = large != nullptr ? 3 : 2;
        m.msg_control = c.aux[j];
        m.msg_controllen = kAuxSpace;
        m.msg_flags = 0;
        c.mmsg[j].msg_len = 0;
      }
      int r = recvmmsg(fd_, c.mmsg, want, MSG_TRUNC | MSG_DONTWAIT, nullptr);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOTSOCK) {
          // Not (any more) a packet socket: the number was closed behind our
          // back and reused. The addon forgets it and reads it like any fd.
          out.notSock = true;
          break;
        }
        if (err == EINVAL) {
          // The kernel could not describe a frame in a virtio-net header
          // (a GSO type it has no code for): that frame is gone. Such
          // frames are super-frames, larger than a slot anyway.
          c.oversized++;
          if (++dropped > count) break;
          continue;
        }
        if (filled > 0) break;  // return what we have; the error recurs next call
        out.err = err;
        out.syscall = "recvmmsg";
        return out;
      }
      uint32_t start = filled;
      uint32_t kStart = k;
      uint32_t limit = large != nullptr ? c.maxLarge : c.maxFrame;
      for (int j = 0; j < r; j++) {
        const struct msghdr& m = c.mmsg[j].msg_hdr;
        uint32_t total = c.mmsg[j].msg_len;
        if (c.sll[j].sll_pkttype == PACKET_OUTGOING || total < kVnetHdrLen + 14) {
          // Outgoing copies are filtered by PACKET_IGNORE_OUTGOING already
          // (this catches kernels without it); frames shorter than an
          // Ethernet header do not arrive on an Ethernet interface.
          dropped++;
          continue;
        }
        uint32_t len = total - kVnetHdrLen;
        const struct tpacket_auxdata* aux = nullptr;
        for (struct cmsghdr* cm = CMSG_FIRSTHDR(const_cast<struct msghdr*>(&m)); cm != nullptr;
             cm = CMSG_NXTHDR(const_cast<struct msghdr*>(&m), cm)) {
          if (cm->cmsg_level == SOL_PACKET && cm->cmsg_type == PACKET_AUXDATA &&
              cm->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
            aux = reinterpret_cast<const struct tpacket_auxdata*>(CMSG_DATA(cm));
          }
        }
        bool vlan = aux != nullptr && (aux->tp_status & TP_STATUS_VLAN_VALID) != 0;
        if ((m.msg_flags & MSG_TRUNC) != 0 || len > limit || (vlan && len + 4 > limit)) {
          c.oversized++;
          dropped++;
          continue;
        }
        uint8_t vmeta[kMetaBytes] = {};
        memcpy(vmeta, &c.vnet[j], kVnetHdrLen);
        if (!VnetValid(vmeta, len)) {
          c.badVnet++;
          dropped++;
          continue;
        }
        uint32_t src = hs[start + j];
        uint32_t h = hs[filled];
        uint32_t off;
        if (len > c.maxFrame || (vlan && len + 4 > c.maxFrame)) {
          // overflowed into large[kStart + j]: bring that spare to large[k]
          // (large[k .. kStart + j) are unused spares), then move the head
          uint32_t tmp = large[k];
          large[k] = large[kStart + j];
          large[kStart + j] = tmp;
          uint32_t L = large[k];
          memcpy(c.base + c.SlotBase(L) + c.headroom, c.base + c.SlotBase(src) + c.headroom, c.maxFrame);
          hs[filled] = L;
          large[k] = h;  // h's slot is free now (its frame, if any, moved down already or is this one's head)
          k++;
          h = L;
          off = c.SlotBase(h) + c.headroom;
        } else {
          off = c.SlotBase(h) + c.headroom;
          if (src != h) memcpy(c.base + off, c.base + c.SlotBase(src) + c.headroom, len);
        }
        uint8_t* frame = c.base + off;
        uint8_t* meta = c.MetaOf(h);
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
        c.offsets[h] = off;
        c.lengths[h] = len;
        filled++;
      }
      if (static_cast<uint32_t>(r) < want) break;  // the queue is empty (or an error waits for the next call)
      if (dropped > count) break;
    }
    out.filled = filled;
    out.largeUsed = k;
    return out;
  }

  // sendmmsg(2), up to kMmsgBatch frames per call, each as [virtio-net
  // header (the frame's annotations) | frame]. sendmmsg stops at the first
  // frame it cannot send and returns how many it sent; the next call starts
  // at that frame, so its error shows as −1 there (hard: consumed and
  // counted) or EAGAIN (stop: the rest stays with the caller). notSock
  // (the rest is written as a plain fd) only when the fd turns out not to
  // be a packet socket.
  WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) override {
    WriteResult w;
    while (w.consumed < count) {
      uint32_t k = count - w.consumed < kMmsgBatch ? count - w.consumed : kMmsgBatch;
      for (uint32_t j = 0; j < k; j++) {
        uint32_t h = hs[w.consumed + j];
        // the frame's annotations are its virtio-net header: the kernel
        // segments a super-frame and completes a partial checksum
        c.mmsgIov[j][0] = {c.MetaOf(h), kVnetHdrLen};
        c.mmsgIov[j][1] = {c.base + c.offsets[h], c.lengths[h]};
        struct msghdr& m = c.mmsg[j].msg_hdr;
        m.msg_name = nullptr;  // bound: the socket's interface and protocol
        m.msg_namelen = 0;
        m.msg_iov = c.mmsgIov[j];
        m.msg_iovlen = 2;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
      }
      int r = sendmmsg(fd_, c.mmsg, k, MSG_DONTWAIT);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOTSOCK) {
          w.notSock = true;  // see Read; the rest is written as a plain fd
          break;
        }
        w.failed++;  // hard error (ENETDOWN, EMSGSIZE, EINVAL for < 14 bytes, ENOBUFS): consumed
        w.consumed++;
        continue;
      }
      w.consumed += static_cast<uint32_t>(r);
    }
    return w;
  }
};

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

}  // namespace

Napi::Value OpenPacket(const Napi::CallbackInfo& info, DeviceTable& devices) {
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
  devices.Set(std::unique_ptr<Device>(new PacketDevice(res.fd)));  // a reused number is not a tunnel or unix socket any more
  double mac = 0;
  for (int i = 0; i < 6; i++) mac = mac * 256 + res.mac[i];
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, res.fd));
  out.Set("ifindex", Napi::Number::New(env, res.ifindex));
  out.Set("mac", Napi::Number::New(env, mac));
  return out;
}

}  // namespace usernet
