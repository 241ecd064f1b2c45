// usernet native addon: what unix.cc (datagram sockets, listeners) and
// stream.cc (framed streams) share.

#ifndef USERNET_NATIVE_UNIX_H_
#define USERNET_NATIVE_UNIX_H_

#include <napi.h>

#include <sys/stat.h>
#include <sys/un.h>

#include <string>

namespace usernet {

// The socket file an fd bound: close(fd) unlinks it, if it is still the
// same file (dev/ino).
struct SocketFile {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;

  // Unlinks path if it is the socket file this fd made (same dev/ino):
  // never a file someone else has put there since.
  void UnlinkOwn() const;
};

// An errno-shaped error for a step on a socket path: syscall "STEP 'PATH'", .path set.
Napi::Error PathError(Napi::Env env, int err, const char* step, const std::string& path);

}  // namespace usernet

#endif  // USERNET_NATIVE_UNIX_H_
