// usernet native addon: the shared batch I/O core.
//
// The addon (addon.cc) moves Ethernet frames between file descriptors and
// the JS FramePool in batches. Every fd it opens gets one Device object
// (one file per kind: tap.cc, packet.cc, tunnel.cc, unix.cc, stream.cc);
// readBatch/writeBatch look the fd's device up once and make one virtual
// call. An fd the addon did not open (a pipe, a socket made elsewhere) is
// read and written by a PlainDevice made on the stack for the call.
//
// This file holds what every device shares: the pool binding (Core: slot
// geometry, per-frame annotations, counters, and the recvmmsg/sendmmsg
// scratch: JS is single-threaded, so one set serves every call), the
// Device base, the checksum and virtio-net header helpers, and the batch
// helpers more than one device uses (plain readv/write, datagram reads).
//
// The whole contract (argument meanings, return values, errors) is written
// down in src/io/native.ts; each device file starts with its part of it.
//
// Hot path rules: readBatch/writeBatch allocate nothing and create no JS
// objects; devices report errors as an errno (ReadResult) and the addon
// turns them into JS errors.

#ifndef USERNET_NATIVE_CORE_H_
#define USERNET_NATIVE_CORE_H_

#include <linux/if_packet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace usernet {

// struct virtio_net_hdr of <linux/virtio_net.h> (that header does not
// compile as C++: a field is named `class`). Fields in host order (legacy
// virtio: what a packet socket's PACKET_VNET_HDR and a TAP use).
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
// Frames per sendmsg(2) on a framed unix stream (2 iovecs each + the
// pending tail: well under IOV_MAX).
constexpr uint32_t kStreamBatch = 256;

// The pool as bindPool() bound it, the addon's counters, and the scratch
// every batched syscall uses.
struct Core {
  // ---- pool (raw pointers; the addon holds references to the JS objects)
  uint8_t* base = nullptr;
  size_t byteLength = 0;
  uint32_t* offsets = nullptr;
  uint32_t* lengths = nullptr;
  uint32_t capacity = 0;
  uint32_t slotSize = 0;
  uint32_t headroom = 0;
  uint32_t maxFrame = 0;
  // Large slots (handles >= smallCap): largeSlotSize bytes each, from
  // largeBase. Annotations: 12 bytes per handle at meta (a virtio-net
  // header, host order; see src/dataplane/pool.ts); null when the pool has
  // none bound (then metaScratch stands in, always zero).
  uint32_t smallCap = 0;
  uint32_t largeSlotSize = 0;
  size_t largeBase = 0;
  uint32_t maxLarge = 0;
  uint8_t* meta = nullptr;
  uint8_t metaScratch[kMetaBytes] = {};

  size_t SlotBase(uint32_t h) const {
    return h < smallCap ? static_cast<size_t>(h) * slotSize : largeBase + static_cast<size_t>(h - smallCap) * largeSlotSize;
  }
  uint8_t* MetaOf(uint32_t h) {
    if (meta != nullptr) return meta + static_cast<size_t>(h) * kMetaBytes;
    memset(metaScratch, 0, kMetaBytes);
    return metaScratch;
  }

  // ---- counters (stats())
  double oversized = 0;
  double badVnet = 0;  // frames with a malformed virtio-net header (dropped)
  double noGso = 0;    // super-frames handed to an fd that cannot take them (failed)

  // ---- scratch (the hot path allocates nothing)
  uint8_t sentinel[1];  // readv's last iovec: reaching it means the frame did not fit
  struct mmsghdr mmsg[kMmsgBatch];
  struct iovec mmsgIov[kMmsgBatch][3];
  VnetHdr vnet[kMmsgBatch];
  struct sockaddr_ll sll[kMmsgBatch];
  alignas(struct cmsghdr) uint8_t aux[kMmsgBatch][kAuxSpace];
  struct sockaddr_in inet[kMmsgBatch];  // tunnels: senders (read), destinations (write)
  uint8_t streamHdr[kStreamBatch][4];   // framed writes: the length prefixes of one sendmsg
  struct iovec streamIov[2 * kStreamBatch + 1];
};

// What a device's Read did. err != 0: the call throws an errno-shaped Error
// (syscall names the step); range != null: it throws that RangeError
// before any I/O; notSock: the fd turned out not to be (any more) the
// socket that was opened (its number was closed behind the addon's back
// and reused): the addon forgets the device and reads the rest,
// handles[filled..count), as a plain fd.
struct ReadResult {
  uint32_t filled = 0;
  uint32_t largeUsed = 0;
  int err = 0;
  const char* syscall = nullptr;
  const char* range = nullptr;
  bool notSock = false;
};

// What a device's Write did (consumed, failed: the writeBatch contract);
// notSock as for ReadResult: the addon writes handles[consumed..count) as a
// plain fd.
struct WriteResult {
  uint32_t consumed = 0;
  uint32_t failed = 0;
  bool notSock = false;
};

struct Watcher;

// One fd the addon opened (or, PlainDevice on the stack, one it did not).
// Destroying a device releases nothing of the kernel's: only Close() does
// (close(fd) from JS); an opener that gets a number back from the kernel
// simply drops whatever device the number had before.
class Device {
 public:
  enum class Kind { kPlain, kTap, kTapOffload, kPacket, kTunnel, kUnixDgram, kUnixListener, kUnixStream };

  Device(int fd, Kind kind) : fd_(fd), kind_(kind) {}
  virtual ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  int fd() const { return fd_; }
  Kind kind() const { return kind_; }

  // readBatch: hs[0..count) are free small (or, without spares, any)
  // slots; large[0..largeCount) spare large slots, or null.
  virtual ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* large, uint32_t largeCount) = 0;
  // writeBatch: hs[0..count) are frames to send.
  virtual WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) = 0;
  // close(fd): releases what goes with the fd (a tunnel's raw socket, a
  // bound socket's file), then closes it. Returns 0 or the errno of close.
  virtual int Close();
  // pollStart: an error condition is transient (re-arm the watcher after cb).
  virtual bool RearmOnError() const { return false; }
  // pollStart: the watcher also flushes pending bytes when writable.
  virtual bool FlushesWhenWritable() const { return false; }
  virtual bool HasPending() const { return false; }
  virtual void FlushPending() {}
  // The socket file this fd bound (errors of acceptUnixStream name it).
  virtual const std::string* BoundPath() const { return nullptr; }

  // The pollStart watcher that flushes this device's pending bytes, if any
  // (linked both ways; whichever goes first unlinks).
  Watcher* watcher = nullptr;

 protected:
  const int fd_;

 private:
  const Kind kind_;
};

// Any fd the addon did not open, a plain TAP, a unix listener: one readv(2)
// per frame into its slot, one write(2) per frame (after PrepareForPlainFd).
class PlainDevice : public Device {
 public:
  explicit PlainDevice(int fd, Kind kind = Kind::kPlain) : Device(fd, kind) {}
  ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* large, uint32_t largeCount) override;
  WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) override;
};

// The addon's devices by fd number.
class DeviceTable {
 public:
  Device* Get(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < byFd_.size() ? byFd_[fd].get() : nullptr;
  }
  // Takes fd's device away (closing nothing): close(fd) is about to close
  // it, or the number turned out to be something else.
  std::unique_ptr<Device> Take(int fd);
  // A number an opener just got from the kernel: whatever the addon
  // remembered about an earlier fd with that number (closed behind its
  // back) no longer applies.
  void Claim(int fd) { Take(fd); }
  // Claims d's number and remembers d there.
  void Set(std::unique_ptr<Device> d);

 private:
  std::vector<std::unique_ptr<Device>> byFd_;
};

// ---- checksums and virtio-net headers

// CHECKSUM_PARTIAL: the field at csum_start + csum_offset holds the folded
// pseudo-header sum; the final checksum is the complement of the sum from
// csum_start to the end (what the kernel's skb_checksum_help does).
void CompleteChecksum(uint8_t* frame, uint32_t len, const VnetHdr& vh);
// The same, from a frame's annotations (meta: a virtio-net header).
void CompleteChecksumMeta(uint8_t* frame, uint32_t len, const uint8_t* meta);
// A virtio-net header the dataplane can trust for a frame of len bytes:
// a known GSO type (TCPv4, UDP, TCPv6, UDP_L4, with or without ECN) with a
// non-zero segment size and a partial checksum; a checksum start and field
// inside the frame; a header length inside the frame. The elements check
// the headers themselves (src/wire/gso.ts) before they rely on them.
// (Inline: it runs for every frame read with a virtio-net header.)
inline bool VnetValid(const uint8_t* meta, uint32_t len) {
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

// ---- batch helpers

// One readv(2) per frame into hs[0..count) (syscall 'read' on error).
ReadResult ReadPlain(Core& c, int fd, const uint32_t* hs, uint32_t count);
// One write(2) per frame, from w->consumed on.
void WritePlain(Core& c, int fd, const uint32_t* hs, uint32_t count, WriteResult* w);
// Frames for an fd that takes no virtio-net header: partial checksums
// completed; a super-frame's length zeroed (it then fails; counted noGso).
void PrepareForPlainFd(Core& c, const uint32_t* hs, uint32_t count);
// recvmmsg(2) of datagrams, one per slot; withSender: the sender's IPv4
// address and port go into the 8 bytes in front of the payload.
ReadResult ReadDatagrams(Core& c, int fd, const uint32_t* hs, uint32_t count, bool withSender);
// A frame read into small slot smallH overflowed into the large spare at
// *largeAt: move its head and annotations there and swap the handles.
void PromoteToLarge(Core& c, uint32_t* hsAt, uint32_t* largeAt, uint32_t smallH);

}  // namespace usernet

#endif  // USERNET_NATIVE_CORE_H_
