// usernet native addon: opener helpers (see open.h), and openSocketIn,
// which opens a socket for Node to adopt (no device: the addon never reads
// or writes it).
//
// Contract (src/io/native.ts has the whole text):
// - openSocketIn(netns, type, ip, port) creates an AF_INET socket
//   (type 'udp': SOCK_DGRAM, 'tcp': SOCK_STREAM) inside the network
//   namespace `netns` (an `ip netns` name meaning /run/netns/NAME, or a path
//   such as /proc/PID/ns/net), the same way openPacket does: a helper thread
//   setns(2)s there, makes the socket and exits; the process never changes
//   namespace and the socket stays in the one it was made in (as do the
//   connections a TCP listener accepts). Non-blocking, close-on-exec,
//   SO_REUSEADDR, bound to ip:port (port 0: the kernel picks); 'tcp' is
//   also listening (backlog 128). Returns the fd, for Node to adopt. Node
//   owns it from then on; before that, release it with close(fd). Errors:
//   errno-shaped (code 'ENOENT' with syscall "open netns '/run/netns/X'"
//   for a namespace that does not exist, 'EPERM' for setns or a port < 1024
//   without privileges, 'EADDRINUSE' / 'EADDRNOTAVAIL' with syscall
//   "bind udp 127.0.0.11:53 in '/run/netns/X'" and .address/.port set);
//   TypeError for a type other than 'udp'/'tcp' or an ip that is not dotted
//   IPv4, RangeError for a port outside [0, 65535] or an empty netns.

#include "open.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

namespace usernet {

// ---------------------------------------------------------------- errors and arguments

namespace {

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  return name != nullptr ? name : "EUNKNOWN";
}

}  // namespace

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* name = ErrnoName(err);
  std::string msg = std::string(name) + ": " + strerror(err) + ", " + syscall;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

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

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  napi_value v = info[i];
  uint32_t out;
  if (napi_get_value_uint32(info.Env(), v, &out) != napi_ok) ThrowType(info.Env(), std::string(what) + " must be a number");
  return out;
}

int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  int32_t fd;
  if (napi_get_value_int32(info.Env(), info[i], &fd) != napi_ok) ThrowType(info.Env(), "fd must be a number");
  return fd;
}

struct sockaddr_in InetAddrArg(Napi::Env env, const Napi::Value& ipV, const Napi::Value& portV, std::string* ipOut, int* portOut) {
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

// ---------------------------------------------------------------- namespaces and sockets

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

void RaiseBuffer(int fd, int forceOpt, int opt) {
  int size = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, forceOpt, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size);
}

// ---------------------------------------------------------------- openSocketIn

namespace {

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

}  // namespace

Napi::Value OpenSocketIn(const Napi::CallbackInfo& info, DeviceTable& devices) {
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
  devices.Claim(res.fd);  // a reused number is not a packet socket, tunnel or unix socket any more
  return Napi::Number::New(env, res.fd);
}

}  // namespace usernet
