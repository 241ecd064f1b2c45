// usernet native addon: what the openers share (errno-shaped JS errors,
// argument parsing, entering a network namespace, socket buffers), and the
// openers themselves, one per device file; addon.cc exports them.

#ifndef USERNET_NATIVE_OPEN_H_
#define USERNET_NATIVE_OPEN_H_

#include <napi.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>

#include "core.h"

namespace usernet {

// ---- errors and arguments

// An Error shaped like Node's system errors: message "EBADF: Bad file
// descriptor, read", .code = 'EBADF', .errno = 9, .syscall = 'read'.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);

// Raw view of a Uint32Array; the pointer stays valid while a reference to
// the array is held and its ArrayBuffer is not detached (transferred).
// (napi_get_typedarray_info moves a small on-heap typed array's contents
// off-heap, so a captured pointer does not move with the GC.)
struct U32View {
  uint32_t* data = nullptr;
  size_t length = 0;
};
U32View ViewOf(Napi::Env env, napi_value v, const char* what);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what);
int ArgFd(const Napi::CallbackInfo& info, size_t i);
// ip (dotted IPv4) and port ([0, 65535]) arguments as a sockaddr_in.
struct sockaddr_in InetAddrArg(Napi::Env env, const Napi::Value& ipV, const Napi::Value& portV, std::string* ipOut, int* portOut);

// ---- namespaces and sockets

// The namespace argument of openPacket/openSocketIn/openTunnel: a path, or
// a bare `ip netns` name meaning /run/netns/NAME.
std::string NetnsPath(Napi::Env env, const Napi::Value& v);

// Raises a socket buffer to 4 MiB: best effort (the *FORCE options need
// CAP_NET_ADMIN; the plain ones are capped by net.core.[rw]mem_max).
void RaiseBuffer(int fd, int forceOpt, int opt);

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

// ---- the openers (contracts at the top of each file)

Napi::Value OpenTap(const Napi::CallbackInfo& info, DeviceTable& devices);            // tap.cc
Napi::Value OpenPacket(const Napi::CallbackInfo& info, DeviceTable& devices);         // packet.cc
Napi::Value OpenSocketIn(const Napi::CallbackInfo& info, DeviceTable& devices);       // open.cc
Napi::Value OpenTunnel(const Napi::CallbackInfo& info, DeviceTable& devices);         // tunnel.cc
Napi::Value OpenUnixDgram(const Napi::CallbackInfo& info, DeviceTable& devices);      // unix.cc
Napi::Value ListenUnixStream(const Napi::CallbackInfo& info, DeviceTable& devices);   // unix.cc
Napi::Value AcceptUnixStream(const Napi::CallbackInfo& info, DeviceTable& devices);   // stream.cc

}  // namespace usernet

#endif  // USERNET_NATIVE_OPEN_H_
