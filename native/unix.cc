// usernet native addon: unix sockets, the two ways QEMU (7.2+) connects a
// VM's NIC to another process. This file: datagram sockets (QEMU -netdev
// dgram) and the listeners of framed streams (QEMU -netdev stream; the
// accepted connections are stream.cc's).
//
// Contract (src/io/native.ts has the whole text):
// - Paths are 1..107 bytes (sun_path; RangeError otherwise, TypeError for a
//   non-string). Every socket is non-blocking and close-on-exec. Binding
//   one: a stale *socket* file at the path is unlinked first (any other
//   kind of file is left alone, and bind fails with EADDRINUSE); the new
//   socket file gets mode 0600. close(fd) unlinks the file the fd bound, if
//   it is still the same file (device and inode). Errors are errno-shaped
//   with syscall "STEP 'PATH'" (e.g. "bind unix '/run/vm0.sock'", "unlink
//   stale socket '…'") and .path set; nothing stays open or on disk after a
//   failed open.
// - openUnixDgram(localPath, remotePath) → { fd }: an AF_UNIX SOCK_DGRAM
//   socket bound to localPath, send and receive buffers raised to 4 MiB
//   where allowed. It is not connected: the addon remembers remotePath and
//   sends every frame there, so it works before the peer exists and keeps
//   working when the peer comes and goes.
//   - readBatch: recvmmsg(2), up to 64 datagrams per syscall (more loop);
//     one datagram = one frame at offsets[h] = h*slotSize + headroom,
//     lengths[h] = its length. A datagram longer than slotSize − headroom
//     (MSG_TRUNC) is dropped and counted in stats().oversized. Errors as
//     for tunnels (syscall 'recvmmsg'). Datagrams from any sender are read.
//   - writeBatch: sendmmsg(2) to remotePath, up to 64 frames per syscall,
//     one datagram per frame; consumed + 65536 * failed. While the peer is
//     not there — ENOENT or ECONNREFUSED — every frame left in the batch
//     fails at once (one syscall). Other hard errors (EMSGSIZE, ENOBUFS,
//     EACCES, EPERM, …) fail the one frame and the batch goes on. EAGAIN
//     (the peer's receive queue is full) stops the batch.
//   - pollStart: readable = datagrams wait; the watcher is re-armed after
//     an error condition (as for packet sockets).
// - listenUnixStream(path) → { fd }: an AF_UNIX SOCK_STREAM socket bound to
//   path and listening (backlog 16). pollStart(fd, cb) works on it:
//   readable = a connection waits. close(fd) unlinks path; connections
//   accepted from it stay open until closed themselves.

#include "unix.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "open.h"

namespace usernet {

void SocketFile::UnlinkOwn() const {
  if (path.empty()) return;
  struct stat st;
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino) {
    unlink(path.c_str());
  }
}

Napi::Error PathError(Napi::Env env, int err, const char* step, const std::string& path) {
  std::string where = std::string(step) + " '" + path + "'";
  Napi::Error e = ErrnoError(env, err, where.c_str());
  e.Set("path", Napi::String::New(env, path));
  return e;
}

namespace {

class UnixDgramDevice : public Device {
 public:
  UnixDgramDevice(int fd, SocketFile file, const struct sockaddr_un& remote, socklen_t remoteLen)
      : Device(fd, Kind::kUnixDgram), file_(std::move(file)), remote_(remote), remoteLen_(remoteLen) {}

  bool RearmOnError() const override { return true; }
  const std::string* BoundPath() const override { return &file_.path; }

  ReadResult Read(Core& c, uint32_t* hs, uint32_t count, uint32_t* /*large*/, uint32_t /*largeCount*/) override {
    return ReadDatagrams(c, fd_, hs, count, false);
  }

  // sendmmsg(2), up to kMmsgBatch frames per call, each one datagram to
  // the remembered remote path. EAGAIN (the peer's queue is full) stops the
  // batch. While the peer is not there (ENOENT: no socket file;
  // ECONNREFUSED: a file nobody is bound to) every frame left fails at once
  // (one syscall, not one per frame). Other errors (EMSGSIZE, ENOBUFS,
  // EACCES, EPERM, …) fail the frame sendmmsg stopped at and the batch goes
  // on.
  WriteResult Write(Core& c, const uint32_t* hs, uint32_t count) override {
    PrepareForPlainFd(c, hs, count);
    WriteResult w;
    while (w.consumed < count) {
      uint32_t k = count - w.consumed < kMmsgBatch ? count - w.consumed : kMmsgBatch;
      for (uint32_t j = 0; j < k; j++) {
        uint32_t h = hs[w.consumed + j];
        c.mmsgIov[j][0] = {c.base + c.offsets[h], c.lengths[h]};
        struct msghdr& m = c.mmsg[j].msg_hdr;
        m.msg_name = &remote_;
        m.msg_namelen = remoteLen_;
        m.msg_iov = c.mmsgIov[j];
        m.msg_iovlen = 1;
        m.msg_control = nullptr;
        m.msg_controllen = 0;
        m.msg_flags = 0;
      }
      int r = sendmmsg(fd_, c.mmsg, k, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (err == ENOENT || err == ECONNREFUSED) {
          w.failed += count - w.consumed;  // the peer is not there (yet)
          w.consumed = count;
          break;
        }
        w.failed++;  // hard error: consumed
        w.consumed++;
        continue;
      }
      w.consumed += static_cast<uint32_t>(r);
    }
    return w;
  }

  int Close() override {
    file_.UnlinkOwn();  // a bound unix socket: its file goes with it
    return Device::Close();
  }

 private:
  const SocketFile file_;
  struct sockaddr_un remote_;  // where every frame goes
  const socklen_t remoteLen_;
};

// A listening stream socket: read and written (if anyone does) as a plain
// fd; accept with acceptUnixStream.
class UnixListener : public PlainDevice {
 public:
  UnixListener(int fd, SocketFile file) : PlainDevice(fd, Kind::kUnixListener), file_(std::move(file)) {}

  const std::string* BoundPath() const override { return &file_.path; }

  int Close() override {
    file_.UnlinkOwn();
    return Device::Close();
  }

 private:
  const SocketFile file_;
};

// A socket path argument (1..107 bytes, no NUL) as a sockaddr_un.
std::string UnixPathArg(Napi::Env env, const Napi::Value& v, const char* what, struct sockaddr_un* addr, socklen_t* len) {
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

// A unix socket of `type` bound to path: non-blocking, close-on-exec; a
// stale socket file at path is unlinked first (any other file is left
// alone: bind then fails with EADDRINUSE); the new file gets mode 0600;
// a stream socket also listens. Fills *file. Throws (nothing left open or
// on disk) on failure.
int BindUnix(Napi::Env env, int type, const std::string& path, const struct sockaddr_un& addr, socklen_t len, SocketFile* file) {
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
  file->path = path;
  file->dev = st.st_dev;
  file->ino = st.st_ino;
  return fd;
}

}  // namespace

Napi::Value OpenUnixDgram(const Napi::CallbackInfo& info, DeviceTable& devices) {
  Napi::Env env = info.Env();
  struct sockaddr_un local;
  socklen_t localLen;
  std::string localPath = UnixPathArg(env, info[0], "localPath", &local, &localLen);
  struct sockaddr_un remote;
  socklen_t remoteLen;
  UnixPathArg(env, info[1], "remotePath", &remote, &remoteLen);
  SocketFile file;
  int fd = BindUnix(env, SOCK_DGRAM, localPath, local, localLen, &file);
  RaiseBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  RaiseBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  devices.Set(std::unique_ptr<Device>(new UnixDgramDevice(fd, std::move(file), remote, remoteLen)));
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  return out;
}

Napi::Value ListenUnixStream(const Napi::CallbackInfo& info, DeviceTable& devices) {
  Napi::Env env = info.Env();
  struct sockaddr_un addr;
  socklen_t len;
  std::string path = UnixPathArg(env, info[0], "path", &addr, &len);
  SocketFile file;
  int fd = BindUnix(env, SOCK_STREAM, path, addr, len, &file);
  devices.Set(std::unique_ptr<Device>(new UnixListener(fd, std::move(file))));
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  return out;
}

}  // namespace usernet
