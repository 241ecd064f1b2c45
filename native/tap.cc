// usernet native addon: TAP devices.
//
// Contract (src/io/native.ts has the whole text):
// - openTap(name, opts) opens /dev/net/tun with IFF_TAP|IFF_NO_PI (plus
//   IFF_VNET_HDR when opts.vnetHdr, with a 12-byte virtio-net header in
//   front of every frame read or written: the header then sits at
//   offsets[h]), non-blocking, close-on-exec; name may be '' or contain
//   '%d' to let the kernel pick (≤ 15 bytes); returns the fd and the
//   kernel's name for the device. close(fd) stops any watcher on fd and
//   closes it (a TAP device that is not persistent disappears then).
//   readBatch/writeBatch on it: one readv(2) / write(2) per frame, as for
//   any fd (core.cc).
// - openTap(name, {offload: true}): IFF_VNET_HDR with a 12-byte header,
//   TUNSETOFFLOAD CSUM|TSO4|TSO6|TSO_ECN (|USO4|USO6 where the kernel has
//   them); returns `offloads` (the TUN_F_* bits set). The container's
//   kernel then hands over TCP super-frames (up to 64 KiB) and partial
//   checksums, and takes them back.
//   - readBatch(fd, handles, count, large, largeCount): handles are small
//     slots; large[0..largeCount) are spare large slots. Each read goes into
//     [meta(h) | small slot | the rest of a large spare]; a frame longer
//     than a small slot ends up in the large spare, which takes its place in
//     handles, and the small handle takes the spare's place in large (free
//     it). Returns filled + 65536 * largeUsed (large[0..largeUsed) now hold
//     freed small handles). With spares given, the call stops when they run
//     out. A frame's annotations are set from its header; a partial checksum
//     on a frame that is no super-frame is completed (only super-frames
//     travel partial). A malformed header (unknown GSO type, segment size 0,
//     a super-frame without a partial checksum, checksum or header offsets
//     outside the frame) drops the frame and counts stats().badVnet.
//   - writeBatch writes [meta(h) | frame]: super-frames go out whole.
// - pollStart: an error condition (the device was deleted) calls cb once
//   and stops the watcher; readBatch then throws (EBADFD).

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core.h"
#include "open.h"

namespace usernet {

namespace {

// A TAP without offloads (with or without a raw IFF_VNET_HDR header): a
// plain fd.
class TapDevice : public PlainDevice {
 public:
  explicit TapDevice(int fd) : PlainDevice(fd, Kind::kTap) {}
};

// A TAP with offloads: its 12-byte virtio-net header is the frame's
// annotations.
class OffloadTapDevice : public Device {
 public:
  explicit OffloadTapDevice(int fd) : Device(fd, Kind::kTapOffload) {}

  // One readv(2) per frame into [annotations (12-byte virtio-net header) |
  // small slot | tail of a large spare]. A frame that fits a small slot
  // stays there (a partial checksum on a frame that is no super-frame is
  // completed, so only super-frames travel partial); a longer one (a
  // super-frame) is moved into the large spare (PromoteToLarge: one small
  // slot's bytes copied). Without spares left the call stops (more may
  // wait: the caller refills and reads again); without any spares
  // super-frames cannot be read whole and are dropped (counted oversized).
  // A malformed header (VnetValid) is counted (badVnet) and the frame
  // dropped.
  ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* large, uint32_t largeCount) override {
    ReadResult out;
    uint32_t filled = 0;
    uint32_t dropped = 0;
    uint32_t k = 0;
    while (filled < count) {
      if (large != nullptr && largeCount > 0 && k == largeCount) break;
      uint32_t h = hs[filled];
      uint8_t* meta = c.MetaOf(h);
      size_t off = c.SlotBase(h) + c.headroom;
      struct iovec iov[3];
      iov[0] = {meta, kMetaBytes};
      iov[1] = {c.base + off, c.maxFrame};
      bool tail = large != nullptr && k < largeCount;
      uint32_t limit = tail ? c.maxLarge : c.maxFrame;
      if (tail) iov[2] = {c.base + c.SlotBase(large[k]) + c.headroom + c.maxFrame, c.maxLarge - c.maxFrame};
      else iov[2] = {c.sentinel, 1};
      ssize_t r = readv(fd_, iov, 3);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (filled > 0) break;
        out.err = err;
        out.syscall = "read";
        return out;
      }
      if (r == 0) break;
      if (static_cast<size_t>(r) < kMetaBytes + 14) {
        c.badVnet++;
        if (++dropped > count) break;
        continue;
      }
      uint32_t len = static_cast<uint32_t>(r) - kMetaBytes;
      if (len > limit) {
        c.oversized++;
        if (++dropped > count) break;
        continue;
      }
      if (!VnetValid(meta, len)) {
        c.badVnet++;
        if (++dropped > count) break;
        continue;
      }
      meta[10] = 0;  // num_buffers: not ours
      meta[11] = 0;
      if (len > c.maxFrame) {
        PromoteToLarge(c, &hs[filled], &large[k], h);
        h = hs[filled];
        off = c.SlotBase(h) + c.headroom;
        meta = c.MetaOf(h);
        k++;
      } else if ((meta[0] & kVnetNeedsCsum) != 0 && meta[1] == 0) {
        CompleteChecksumMeta(c.base + off, len, meta);
        meta[0] &= static_cast<uint8_t>(~kVnetNeedsCsum);
      }
      c.offsets[h] = static_cast<uint32_t>(off);
      c.lengths[h] = len;
      filled++;
    }
    out.filled = filled;
    out.largeUsed = k;
    return out;
  }

  // One writev(2) per frame, [annotations | frame]: a super-frame goes out
  // whole (the receiving kernel takes it as GRO'd), a partial checksum
  // stays partial. The kernel checks the header (EINVAL: a hard error,
  // consumed and counted).
  WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) override {
    WriteResult w;
    while (w.consumed < count) {
      uint32_t h = hs[w.consumed];
      uint8_t* meta = c.MetaOf(h);
      meta[10] = 0;
      meta[11] = 0;
      struct iovec iov[2] = {{meta, kMetaBytes}, {c.base + c.offsets[h], c.lengths[h]}};
      ssize_t r = writev(fd_, iov, 2);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        w.failed++;
      }
      w.consumed++;
    }
    return w;
  }
};

}  // namespace

Napi::Value OpenTap(const Napi::CallbackInfo& info, DeviceTable& devices) {
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
  // replaces whatever a reused number was before (packet socket, tunnel, unix socket)
  if (offload) devices.Set(std::unique_ptr<Device>(new OffloadTapDevice(fd)));
  else devices.Set(std::unique_ptr<Device>(new TapDevice(fd)));
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("name", Napi::String::New(env, ifr.ifr_name));
  out.Set("offloads", Napi::Number::New(env, offloads));
  return out;
}

}  // namespace usernet
