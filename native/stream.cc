// usernet native addon: length-framed unix streams (QEMU -netdev stream),
// the connections acceptUnixStream takes from a listener (unix.cc).
//
// Contract (src/io/native.ts has the whole text):
// - acceptUnixStream(listenFd) → { fd } | null: accept4(2) of one waiting
//   connection (non-blocking, close-on-exec, buffers raised to 4 MiB where
//   allowed), or null when none waits (EAGAIN). ECONNABORTED/EINTR are
//   retried; other errors throw (e.g. 'EMFILE', syscall "accept unix
//   'PATH'"). The new fd is a length-framed stream: every frame, both ways,
//   is a 4-byte big-endian length followed by that many bytes. The addon
//   gives it a 256 KiB receive buffer and a 64 KiB pending buffer,
//   allocated once, here; close(fd) frees them.
// - readBatch(fd, handles, count): one read(2) takes whatever the socket
//   holds (up to the free part of the receive buffer) and it is cut into
//   frames, each copied into the next slot (offsets[h] = h*slotSize +
//   headroom, lengths[h] = its length); more reads follow until `count`
//   frames are filled or the socket is drained. A frame that has not fully
//   arrived stays buffered for the next call. Frames already buffered when
//   `count` is reached stay buffered too (a caller that filled its whole
//   batch must call again). A length of 0 or above min(slotSize −
//   headroom, 65535) is a protocol error: that frame is dropped and counted
//   in stats().oversized, and its bytes are discarded as they arrive, so
//   the following frames stay in sync. End of stream: readBatch first
//   returns every complete frame still buffered, then throws code
//   'ECONNRESET' (syscall 'read (the peer closed the stream)'); any other
//   read error is thrown the same way (syscall 'read'). Both are sticky.
// - writeBatch(fd, handles, count): each frame goes out as its 4-byte
//   length and the frame, up to 256 frames per sendmsg(2) (MSG_NOSIGNAL),
//   iovecs pointing into the pool. A partial write never corrupts the
//   stream: the unwritten tail of the frame it cut is copied into the
//   pending buffer, that frame counts as consumed, and the call stops.
//   Pending bytes go out first on the next writeBatch (writeBatch(fd, h, 0)
//   only flushes them); with a pollStart watcher the addon also flushes
//   them by itself as soon as the socket is writable. Return contract:
//   consumed + 65536 * failed. A frame of 0 or more than 65535 bytes fails
//   (consumed) without a syscall and the batch goes on. EPIPE / ECONNRESET
//   or any other error fails every frame left in the call and drops the
//   pending bytes; readBatch reports the end of the stream.
// - pollStart: readable = bytes or the end of the stream wait. As for a
//   TAP, an error condition calls cb once and stops the watcher.

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <new>

#include "core.h"
#include "open.h"
#include "unix.h"
#include "watch.h"

namespace usernet {

namespace {

// A framed stream's receive buffer (allocated once, at accept): reads take
// as much as the socket holds, up to this, and frames are cut out of it.
constexpr size_t kStreamRxCap = 256 * 1024;
// The largest frame the stream protocol carries (QEMU's length prefix is 32
// bits, but no Ethernet frame of ours comes near this).
constexpr uint32_t kStreamMaxFrame = 65535;
// A framed stream's pending buffer: at most the tail of one frame.
constexpr size_t kStreamTxCap = 4 + kStreamMaxFrame;

class UnixStreamDevice : public Device {
 public:
  UnixStreamDevice(int fd, std::unique_ptr<uint8_t[]> rx, std::unique_ptr<uint8_t[]> tx)
      : Device(fd, Kind::kUnixStream), rx_(std::move(rx)), tx_(std::move(tx)) {}

  bool FlushesWhenWritable() const override { return true; }
  bool HasPending() const override { return txLen_ > txOff_; }

  // Writes the pending bytes as far as the socket takes them. A hard error
  // (EPIPE, ECONNRESET, …) drops them: the connection is gone and the read
  // side reports it.
  void FlushPending() override {
    while (txLen_ > txOff_) {
      ssize_t r = send(fd_, tx_.get() + txOff_, txLen_ - txOff_, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        break;
      }
      txOff_ += static_cast<uint32_t>(r);
    }
    txOff_ = 0;
    txLen_ = 0;
  }

  // One read(2) takes as much as the socket holds (up to the receive
  // buffer); complete frames are copied out of the buffer into the slots, a
  // partial one stays buffered for the next call. End of stream or a read
  // error is remembered (sticky) and thrown (EOF as ECONNRESET) once every
  // complete buffered frame has been delivered.
  ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* /*large*/, uint32_t /*largeCount*/) override {
    ReadResult out;
    if (count == 0) return out;
    const uint32_t limit = c.maxFrame < kStreamMaxFrame ? c.maxFrame : kStreamMaxFrame;
    uint8_t* buf = rx_.get();
    uint32_t filled = CutFrames(c, hs, count, limit);
    while (filled < count) {
      if (rxErr_ != 0) {
        if (filled > 0) break;  // the error comes with the next call
        out.err = rxErr_;
        out.syscall = rxErr_ == ECONNRESET ? "read (the peer closed the stream)" : "read";
        return out;
      }
      // keep only the partial frame, at the front (< 64 KiB: cheap)
      uint32_t avail = rxEnd_ - rxStart_;
      if (rxStart_ > 0) {
        if (avail > 0) memmove(buf, buf + rxStart_, avail);
        rxStart_ = 0;
        rxEnd_ = avail;
      }
      size_t space = kStreamRxCap - rxEnd_;
      ssize_t r = read(fd_, buf + rxEnd_, space);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        rxErr_ = err;  // thrown above, or with the next call when frames were cut
        continue;
      }
      if (r == 0) {
        rxErr_ = ECONNRESET;  // EOF: the peer is gone
        continue;
      }
      rxEnd_ += static_cast<uint32_t>(r);
      filled += CutFrames(c, hs + filled, count - filled, limit);
      // A short read drained the socket (a stream read takes all it holds):
      // stop without a read that would only say EAGAIN.
      if (static_cast<size_t>(r) < space) break;
    }
    out.filled = filled;
    return out;
  }

  WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) override;

 private:
  uint32_t CutFrames(Core& c, const uint32_t* hs, uint32_t count, uint32_t limit);

  // receive side: bytes [rxStart_, rxEnd_) of rx_ are read but not yet cut
  // into frames; rxSkip_ bytes still to discard (the rest of a frame with a
  // bad length); rxErr_: EOF (ECONNRESET) or a read error, sticky.
  std::unique_ptr<uint8_t[]> rx_;
  uint32_t rxStart_ = 0;
  uint32_t rxEnd_ = 0;
  uint64_t rxSkip_ = 0;
  int rxErr_ = 0;
  // send side: bytes [txOff_, txLen_) of tx_ are the unwritten tail of a
  // frame a partial write cut; they go out before anything else.
  std::unique_ptr<uint8_t[]> tx_;
  uint32_t txOff_ = 0;
  uint32_t txLen_ = 0;
};

// Cuts up to `count` complete frames out of the receive buffer into the
// slots of hs[0..); returns how many. A length of 0 or above `limit` is a
// protocol error: counted (oversized), and that frame's bytes are skipped
// (now or as they arrive), so the stream stays in sync.
uint32_t UnixStreamDevice::CutFrames(Core& c, const uint32_t* hs, uint32_t count, uint32_t limit) {
  const uint8_t* buf = rx_.get();
  uint32_t filled = 0;
  while (filled < count) {
    uint32_t avail = rxEnd_ - rxStart_;
    if (rxSkip_ > 0) {
      uint32_t k = rxSkip_ < avail ? static_cast<uint32_t>(rxSkip_) : avail;
      rxStart_ += k;
      rxSkip_ -= k;
      if (rxSkip_ > 0) break;
      continue;
    }
    if (avail < 4) break;
    const uint8_t* p = buf + rxStart_;
    uint32_t len = (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
                   (static_cast<uint32_t>(p[2]) << 8) | p[3];
    if (len == 0 || len > limit) {
      c.oversized++;
      rxStart_ += 4;
      rxSkip_ = len;
      continue;
    }
    if (avail - 4 < len) break;  // partial: the rest comes later
    uint32_t h = hs[filled];
    uint32_t off = c.SlotBase(h) + c.headroom;
    memcpy(c.base + off, p + 4, len);
    c.offsets[h] = off;
    c.lengths[h] = len;
    filled++;
    rxStart_ += 4 + len;
  }
  if (rxStart_ == rxEnd_) rxStart_ = rxEnd_ = 0;
  return filled;
}

// sendmsg(2) (MSG_NOSIGNAL) with up to kStreamBatch frames per call, each
// as two iovecs (its length prefix, the frame in the pool), preceded by the
// pending tail of an earlier call if any. The bytes written are walked
// frame by frame: frames written whole are consumed; a frame written in
// part has its unwritten tail copied into the pending buffer and is
// consumed too, and the call stops (the socket is full). EAGAIN stops the
// call (the rest stays with the caller). A frame of 0 or > 65535 bytes
// cannot be framed: it fails (consumed) without a syscall. Any other error
// (EPIPE, ECONNRESET, …: the peer is gone) fails every frame left and
// drops the pending bytes. With count 0 the call only flushes the pending
// bytes.
WriteResult UnixStreamDevice::Write(Core& c, const uint32_t* hs, uint32_t count) {
  PrepareForPlainFd(c, hs, count);
  uint32_t consumed = 0;
  uint32_t failed = 0;
  while (consumed < count || txLen_ > txOff_) {
    int niov = 0;
    uint32_t pend = txLen_ - txOff_;
    if (pend > 0) c.streamIov[niov++] = {tx_.get() + txOff_, pend};
    uint32_t k = 0;
    while (k < kStreamBatch && consumed + k < count) {
      uint32_t h = hs[consumed + k];
      uint32_t len = c.lengths[h];
      if (len == 0 || len > kStreamMaxFrame) break;  // ends the run
      uint8_t* hdr = c.streamHdr[k];
      hdr[0] = static_cast<uint8_t>(len >> 24);
      hdr[1] = static_cast<uint8_t>(len >> 16);
      hdr[2] = static_cast<uint8_t>(len >> 8);
      hdr[3] = static_cast<uint8_t>(len);
      c.streamIov[niov++] = {hdr, 4};
      c.streamIov[niov++] = {c.base + c.offsets[h], len};
      k++;
    }
    if (niov == 0) {
      failed++;  // cannot be framed (EINVAL / EMSGSIZE): consumed, no syscall
      consumed++;
      continue;
    }
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = c.streamIov;
    m.msg_iovlen = static_cast<size_t>(niov);
    ssize_t r = sendmsg(fd_, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      // the connection is gone (EPIPE, ECONNRESET, ENOTCONN, …)
      txOff_ = 0;
      txLen_ = 0;
      failed += count - consumed;
      consumed = count;
      break;
    }
    size_t w = static_cast<size_t>(r);
    if (pend > 0) {
      if (w < pend) {
        txOff_ += static_cast<uint32_t>(w);
        break;  // not even the pending bytes went out: the socket is full
      }
      w -= pend;
      txOff_ = 0;
      txLen_ = 0;
    }
    uint32_t j = 0;
    while (j < k) {
      size_t whole = 4 + static_cast<size_t>(c.lengths[hs[consumed + j]]);
      if (w < whole) break;
      w -= whole;
      j++;
    }
    if (j < k) {
      if (w > 0) {
        // frame j went out in part: its tail waits in the pending buffer
        uint32_t h = hs[consumed + j];
        uint32_t len = c.lengths[h];
        uint8_t* dst = tx_.get();
        uint32_t n = 0;
        if (w < 4) {
          memcpy(dst, c.streamHdr[j] + w, 4 - w);
          n = static_cast<uint32_t>(4 - w);
          memcpy(dst + n, c.base + c.offsets[h], len);
          n += len;
        } else {
          n = static_cast<uint32_t>(len - (w - 4));
          memcpy(dst, c.base + c.offsets[h] + (w - 4), n);
        }
        txOff_ = 0;
        txLen_ = n;
        j++;
      }
      consumed += j;
      break;  // the socket is full
    }
    consumed += j;
  }
  if (txLen_ > txOff_ && watcher != nullptr) SetWritable(watcher, true);
  WriteResult out;
  out.consumed = consumed;
  out.failed = failed;
  return out;
}

}  // namespace

Napi::Value AcceptUnixStream(const Napi::CallbackInfo& info, DeviceTable& devices) {
  Napi::Env env = info.Env();
  int lfd = ArgFd(info, 0);
  Device* l = devices.Get(lfd);
  const std::string* lpath = l != nullptr ? l->BoundPath() : nullptr;
  int fd;
  for (;;) {
    fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) break;
    int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return env.Null();
    if (lpath != nullptr && !lpath->empty()) throw PathError(env, err, "accept unix", *lpath);
    throw ErrnoError(env, err, "accept");
  }
  std::unique_ptr<Device> d;
  try {
    std::unique_ptr<uint8_t[]> rx(new uint8_t[kStreamRxCap]);
    std::unique_ptr<uint8_t[]> tx(new uint8_t[kStreamTxCap]);
    d.reset(new UnixStreamDevice(fd, std::move(rx), std::move(tx)));
  } catch (const std::bad_alloc&) {
    ::close(fd);
    throw Napi::Error::New(env, "usernet: out of memory for a stream's buffers");
  }
  RaiseBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  RaiseBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  devices.Set(std::move(d));
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  return out;
}

}  // namespace usernet
