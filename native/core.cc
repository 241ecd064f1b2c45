// usernet native addon: the shared batch I/O core (see core.h).
//
// Contract, the part every fd shares (src/io/native.ts has the whole text):
// - readBatch(fd, handles, count): handles[0..count) are free frames the
//   caller owns. The addon reads one frame per read (readv(2)) into each in
//   turn: offsets[h] = h*slotSize + headroom, lengths[h] = bytes read (at
//   most slotSize − headroom). It stops at EAGAIN (or a 0-byte read) or
//   after `count` frames and returns how many it filled. A frame longer than
//   slotSize − headroom is dropped and counted in stats().oversized (a TAP
//   would otherwise hand it over silently truncated); its slot is reused.
//   Any other errno throws an Error whose `code` is the errno name (e.g.
//   'EBADFD'; also `.errno`, `.syscall`), unless at least one frame was
//   read, in which case it returns them and the error surfaces on the next
//   call.
// - writeBatch(fd, handles, count): writes each frame (offsets[h],
//   lengths[h]) with one write(2), stops at EAGAIN. count < 65536. Returns
//   consumed + 65536 * failed, where consumed counts frames written or
//   failed with a hard error (those are not retried) and failed counts the
//   hard errors (a TAP gives EIO while the link is down, EINVAL for frames
//   shorter than 14 bytes). Frames not consumed (after EAGAIN) stay with the
//   caller. The addon never frees frames: the caller does.
// - To an fd that takes no virtio-net header, a partial checksum is
//   completed first, and a super-frame fails (its length is set to 0;
//   stats().noGso): the dataplane segments before such fds.

#include "core.h"

#include <errno.h>
#include <unistd.h>

#include "watch.h"

namespace usernet {

// ---------------------------------------------------------------- devices

Device::~Device() {
  if (watcher != nullptr) watcher->device = nullptr;
}

int Device::Close() {
  if (::close(fd_) < 0 && errno != EINTR) return errno;
  return 0;
}

ReadResult PlainDevice::Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* /*large*/, uint32_t /*largeCount*/) {
  return ReadPlain(c, fd_, hs, count);
}

WriteResult PlainDevice::Write(Core& c, const uint32_t* hs, uint32_t count) {
  PrepareForPlainFd(c, hs, count);
  WriteResult w;
  WritePlain(c, fd_, hs, count, &w);
  return w;
}

std::unique_ptr<Device> DeviceTable::Take(int fd) {
  std::unique_ptr<Device> out;
  if (fd < 0 || static_cast<size_t>(fd) >= byFd_.size()) return out;
  out = std::move(byFd_[fd]);
  return out;
}

void DeviceTable::Set(std::unique_ptr<Device> d) {
  int fd = d->fd();
  Claim(fd);
  if (static_cast<size_t>(fd) >= byFd_.size()) byFd_.resize(static_cast<size_t>(fd) + 1);
  byFd_[fd] = std::move(d);
}

// ---------------------------------------------------------------- checksums

namespace {

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

}  // namespace

void CompleteChecksum(uint8_t* frame, uint32_t len, const VnetHdr& vh) {
  uint32_t start = vh.csumStart;
  uint32_t field = start + vh.csumOffset;
  if (start >= len || field + 2 > len) return;  // nonsense offsets: leave the frame alone
  uint16_t c = static_cast<uint16_t>(~FoldSum(OnesSum(frame + start, len - start)));
  if (c == 0) c = 0xffff;  // CSUM_MANGLED_0: 0 means "no checksum" to UDP
  memcpy(frame + field, &c, 2);
}

void CompleteChecksumMeta(uint8_t* frame, uint32_t len, const uint8_t* meta) {
  VnetHdr vh;
  memcpy(&vh, meta, sizeof vh);
  CompleteChecksum(frame, len, vh);
}

// ---------------------------------------------------------------- batch helpers

// TAPs (and any other fd): one readv(2) per frame.
ReadResult ReadPlain(Core& c, int fd, const uint32_t* hs, uint32_t count) {
  ReadResult out;
  uint32_t filled = 0;
  uint32_t dropped = 0;  // oversized frames skipped; bounded so the call ends
  while (filled < count) {
    uint32_t h = hs[filled];
    uint32_t off = c.SlotBase(h) + c.headroom;
    // One readv(2) per frame: the slot, then a 1-byte sentinel. A TAP
    // copies at most the buffer's size and returns the copied length, so
    // a frame larger than the slot would otherwise arrive silently
    // truncated; reaching the sentinel tells us it did.
    struct iovec iov[2] = {{c.base + off, c.maxFrame}, {c.sentinel, 1}};
    ssize_t r = readv(fd, iov, 2);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (filled > 0) break;  // return what we have; the error recurs next call
      out.err = err;
      out.syscall = "read";
      return out;
    }
    if (r == 0) break;  // EOF (not a TAP) or empty datagram: nothing to deliver
    if (static_cast<size_t>(r) > c.maxFrame) {
      // Larger than a slot (MTU above slotSize − headroom − 14, or GSO):
      // the rest is lost, so drop it, count it and reuse the slot.
      c.oversized++;
      if (++dropped > count) break;
      continue;
    }
    c.offsets[h] = off;
    c.lengths[h] = static_cast<uint32_t>(r);
    filled++;
  }
  out.filled = filled;
  return out;
}

// TAPs (and any other fd): one write(2) per frame, from w->consumed on.
void WritePlain(Core& c, int fd, const uint32_t* hs, uint32_t count, WriteResult* w) {
  uint32_t consumed = w->consumed;
  uint32_t failed = w->failed;
  while (consumed < count) {
    uint32_t h = hs[consumed];
    ssize_t r = write(fd, c.base + c.offsets[h], c.lengths[h]);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      failed++;  // hard error: the frame is consumed, not retried
    }
    consumed++;
  }
  w->consumed = consumed;
  w->failed = failed;
}

// An fd that takes no virtio-net header gets frames as a wire carries
// them: a partial checksum is completed here; a super-frame cannot be
// sent (the dataplane segments before it writes to such an fd), so its
// length is zeroed and the write fails (counted noGso).
void PrepareForPlainFd(Core& c, const uint32_t* hs, uint32_t count) {
  if (c.meta == nullptr) return;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t h = hs[i];
    uint8_t* meta = c.meta + static_cast<size_t>(h) * kMetaBytes;
    if (meta[1] != 0) {
      c.noGso++;
      c.lengths[h] = 0;
    } else if ((meta[0] & kVnetNeedsCsum) != 0) {
      if (VnetValid(meta, c.lengths[h])) CompleteChecksumMeta(c.base + c.offsets[h], c.lengths[h], meta);
      meta[0] &= static_cast<uint8_t>(~kVnetNeedsCsum);
    }
  }
}

// Tunnels and unix datagram sockets: recvmmsg(2), up to kMmsgBatch
// datagrams per call, each payload straight into its slot; for a tunnel
// (withSender) the sender goes into the 8 bytes in front of it (IPv4
// address, UDP port, both big-endian, 2 zero bytes). A datagram longer
// than a slot (MSG_TRUNC) is dropped and counted; later ones then move
// down one slot (a copy, on that rare path only) so handles[0..n) stay the
// filled ones.
ReadResult ReadDatagrams(Core& c, int fd, const uint32_t* hs, uint32_t count, bool withSender) {
  ReadResult out;
  uint32_t filled = 0;
  uint32_t dropped = 0;
  while (filled < count) {
    uint32_t want = count - filled < kMmsgBatch ? count - filled : kMmsgBatch;
    for (uint32_t j = 0; j < want; j++) {
      uint32_t h = hs[filled + j];
      c.mmsgIov[j][0] = {c.base + c.SlotBase(h) + c.headroom, c.maxFrame};
      struct msghdr& m = c.mmsg[j].msg_hdr;
      m.msg_name = withSender ? &c.inet[j] : nullptr;
      m.msg_namelen = withSender ? sizeof c.inet[j] : 0;
      m.msg_iov = c.mmsgIov[j];
      m.msg_iovlen = 1;
      m.msg_control = nullptr;
      m.msg_controllen = 0;
      m.msg_flags = 0;
      c.mmsg[j].msg_len = 0;
    }
    int r = recvmmsg(fd, c.mmsg, want, MSG_DONTWAIT, nullptr);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == ENOTSOCK) {
        out.notSock = true;  // the addon forgets the device and reads the rest like any fd
        break;
      }
      if (filled > 0) break;  // return what we have; the error recurs next call
      out.err = err;
      out.syscall = "recvmmsg";
      return out;
    }
    uint32_t start = filled;
    for (int j = 0; j < r; j++) {
      uint32_t len = c.mmsg[j].msg_len;
      if ((c.mmsg[j].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > c.maxFrame) {
        c.oversized++;
        dropped++;
        continue;
      }
      uint32_t src = hs[start + j];
      uint32_t h = hs[filled];
      uint32_t off = c.SlotBase(h) + c.headroom;
      if (src != h) memcpy(c.base + off, c.base + c.SlotBase(src) + c.headroom, len);
      if (withSender) {
        uint8_t* from = c.base + off - 8;  // inside the slot's headroom (≥ 8, checked)
        memcpy(from, &c.inet[j].sin_addr.s_addr, 4);
        memcpy(from + 4, &c.inet[j].sin_port, 2);
        from[6] = 0;
        from[7] = 0;
      }
      c.offsets[h] = off;
      c.lengths[h] = len;
      filled++;
    }
    if (static_cast<uint32_t>(r) < want) break;  // the queue is empty (or an error waits for the next call)
    if (dropped > count) break;
  }
  out.filled = filled;
  return out;
}

void PromoteToLarge(Core& c, uint32_t* hsAt, uint32_t* largeAt, uint32_t smallH) {
  uint32_t L = *largeAt;
  memcpy(c.base + c.SlotBase(L) + c.headroom, c.base + c.SlotBase(smallH) + c.headroom, c.maxFrame);
  memcpy(c.MetaOf(L), c.MetaOf(smallH), kMetaBytes);
  *hsAt = L;
  *largeAt = smallH;
}

}  // namespace usernet
