// usernet native addon: moves Ethernet frames between file descriptors (TAP
// devices, later AF_PACKET and unix sockets) and the JS FramePool, in
// batches, and reports readiness through libuv.
//
// The contract (argument meanings, return values, errors) is written down
// in src/io/native.ts; this file follows it. In short:
//   bindPool(buffer, offsets, lengths, slotSize, headroom)
//   bindHandles(arr) -> id                    (hot-path handle arrays)
//   readBatch(fd, handles|id, count) -> n
//   writeBatch(fd, handles|id, count) -> consumed + 65536 * failed
//   pollStart(fd, cb) -> id,  pollStop(id)
//   openTap(name, {vnetHdr}) -> {fd, name},  close(fd)
//   stats() -> {oversized}
//
// Hot path rules: readBatch/writeBatch allocate nothing and create no JS
// objects; pool and bound handle arrays are raw pointers captured once (the
// addon holds references so the GC keeps the backing stores alive).
//
// Build: binding.gyp (node-addon-api, C++ exceptions on, NAPI_VERSION 8).

#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// ---------------------------------------------------------------- errors

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  return name != nullptr ? name : "EUNKNOWN";
}

// An Error shaped like Node's system errors: message "EBADF: Bad file
// descriptor, read", .code = 'EBADF', .errno = 9, .syscall = 'read'.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* name = ErrnoName(err);
  std::string msg = std::string(name) + ": " + strerror(err) + ", " + syscall;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

// Raw view of a Uint32Array; the pointer stays valid while a reference to
// the array is held and its ArrayBuffer is not detached (transferred).
// (napi_get_typedarray_info moves a small on-heap typed array's contents
// off-heap, so a captured pointer does not move with the GC.)
struct U32View {
  uint32_t* data = nullptr;
  size_t length = 0;
};

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

// ---------------------------------------------------------------- poll watchers

class Usernet;

// Per-env bookkeeping that must outlive the addon instance: close callbacks
// of uv handles can run after the instance data is finalized at env
// teardown, so they only ever touch this and the watcher itself.
struct LoopState {
  uv_loop_t* loop = nullptr;
  int closing = 0;  // uv handles closed whose close callback has not run
  bool tearingDown = false;
  napi_async_cleanup_hook_handle hook = nullptr;
};

void OnWatcherClosed(uv_handle_t* h);

struct Watcher {
  uv_poll_t handle;
  napi_env env;
  Napi::FunctionReference cb;
  napi_async_context asyncContext = nullptr;
  LoopState* loopState;
  uint32_t id;
  int fd;
  bool inCallback = false;  // cb is running (pollStop from inside cb is deferred)
  bool stopPending = false;
};

void FinishRelease(Watcher* w) {
  w->cb.Reset();
  if (w->asyncContext != nullptr) napi_async_destroy(w->env, w->asyncContext);
  w->asyncContext = nullptr;
  w->loopState->closing++;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnWatcherClosed);
}

// Stops watching now; drops the JS references and closes the uv handle now,
// or right after cb returns when called from inside cb.
void ReleaseWatcher(Watcher* w) {
  uv_poll_stop(&w->handle);
  if (w->inCallback) {
    w->stopPending = true;
  } else {
    FinishRelease(w);
  }
}

void MaybeFinishTeardown(LoopState* ls) {
  if (ls->tearingDown && ls->closing == 0) {
    napi_remove_async_cleanup_hook(ls->hook);
    delete ls;
  }
}

void OnWatcherClosed(uv_handle_t* h) {
  Watcher* w = static_cast<Watcher*>(h->data);
  LoopState* ls = w->loopState;
  delete w;
  ls->closing--;
  MaybeFinishTeardown(ls);
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Watcher* w = static_cast<Watcher*>(h->data);
  // status < 0 (UV_EBADF on POLLERR, e.g. a TAP whose device was deleted):
  // libuv has already stopped the watcher. We still call cb so that its
  // readBatch surfaces the real error (EBADFD) to JS.
  napi_env env = w->env;
  Napi::HandleScope scope(env);
  napi_value global;
  napi_get_global(env, &global);
  napi_value fn = w->cb.Value();
  napi_value result;
  // napi_make_callback opens a callback scope: process.nextTick and promise
  // jobs queued by cb run when it returns, as for any libuv-driven callback.
  w->inCallback = true;
  napi_status st = napi_make_callback(env, w->asyncContext, global, fn, 0, nullptr, &result);
  w->inCallback = false;
  if (w->stopPending) FinishRelease(w);
  if (st == napi_pending_exception) {
    // cb threw: hand the exception to process 'uncaughtException' (the
    // default handler prints it and exits the process). Nothing is pending
    // when JS could not be entered at all (env shutting down).
    napi_value exc;
    napi_valuetype type = napi_undefined;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok && napi_typeof(env, exc, &type) == napi_ok &&
        type != napi_undefined) {
      napi_fatal_exception(env, exc);
    }
  }
  // Any other failure means the isolate is terminating (worker.terminate()
  // mid-callback): nothing to report to, the env cleanup hook closes us.
}

// ---------------------------------------------------------------- the addon

class Usernet : public Napi::Addon<Usernet> {
 public:
  Usernet(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
        InstanceMethod("bindPool", &Usernet::BindPool),
        InstanceMethod("bindHandles", &Usernet::BindHandles),
        InstanceMethod("unbindHandles", &Usernet::UnbindHandles),
        InstanceMethod("readBatch", &Usernet::ReadBatch),
        InstanceMethod("writeBatch", &Usernet::WriteBatch),
        InstanceMethod("openTap", &Usernet::OpenTap),
        InstanceMethod("close", &Usernet::Close),
        InstanceMethod("pollStart", &Usernet::PollStart),
        InstanceMethod("pollStop", &Usernet::PollStop),
        InstanceMethod("stats", &Usernet::Stats),
    });
    loopState_ = new LoopState();
    if (napi_get_uv_event_loop(env, &loopState_->loop) != napi_ok) {
      throw Napi::Error::New(env, "usernet: no libuv loop for this environment");
    }
    // At env teardown (process exit, worker termination) close every
    // watcher and keep the env alive until libuv has run the close callbacks.
    napi_add_async_cleanup_hook(env, &Usernet::AsyncCleanup, this, &loopState_->hook);
  }

 private:
  // ---- pool and handle arrays

  uint8_t* base_ = nullptr;
  size_t byteLength_ = 0;
  uint32_t* offsets_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t slotSize_ = 0;
  uint32_t headroom_ = 0;
  uint32_t maxFrame_ = 0;
  Napi::Reference<Napi::ArrayBuffer> bufferRef_;
  Napi::ObjectReference offsetsRef_;
  Napi::ObjectReference lengthsRef_;

  struct BoundHandles {
    U32View view;
    Napi::ObjectReference ref;
  };
  std::vector<BoundHandles> bound_;  // index = id − 1; empty ref = free slot

  // ---- watchers
  LoopState* loopState_;
  std::unordered_map<uint32_t, Watcher*> watchers_;
  uint32_t nextWatcherId_ = 1;

  // ---- counters
  double oversized_ = 0;
  uint8_t sentinel_[1];

  void RequirePool(Napi::Env env) {
    if (base_ == nullptr) throw Napi::Error::New(env, "usernet: bindPool() has not been called");
  }

  static uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
    napi_value v = info[i];
    uint32_t out;
    if (napi_get_value_uint32(info.Env(), v, &out) != napi_ok) ThrowType(info.Env(), std::string(what) + " must be a number");
    return out;
  }

  static int ArgFd(const Napi::CallbackInfo& info, size_t i) {
    int32_t fd;
    if (napi_get_value_int32(info.Env(), info[i], &fd) != napi_ok) ThrowType(info.Env(), "fd must be a number");
    return fd;
  }

  // handles argument: a bindHandles() id (no introspection) or a Uint32Array.
  U32View HandlesArg(const Napi::CallbackInfo& info, size_t i) {
    napi_env env = info.Env();
    napi_value v = info[i];
    uint32_t id;
    if (napi_get_value_uint32(env, v, &id) == napi_ok) {
      if (id == 0 || id > bound_.size() || bound_[id - 1].ref.IsEmpty()) ThrowRange(env, "unknown handles id " + std::to_string(id));
      return bound_[id - 1].view;
    }
    return ViewOf(env, v, "handles");
  }

  void BindPool(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArrayBuffer()) ThrowType(env, "buffer must be an ArrayBuffer");
    Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
    U32View offsets = ViewOf(env, info[1], "offsets");
    U32View lengths = ViewOf(env, info[2], "lengths");
    uint32_t slotSize = ArgU32(info, 3, "slotSize");
    uint32_t headroom = ArgU32(info, 4, "headroom");
    if (slotSize == 0 || headroom >= slotSize) ThrowRange(env, "need 0 <= headroom < slotSize");
    size_t capacity = offsets.length < lengths.length ? offsets.length : lengths.length;
    size_t byteLength = buffer.ByteLength();
    if (capacity == 0 || capacity > UINT32_MAX / slotSize || static_cast<size_t>(capacity) * slotSize > byteLength) {
      ThrowRange(env, "buffer is smaller than capacity * slotSize");
    }
    base_ = static_cast<uint8_t*>(buffer.Data());
    byteLength_ = byteLength;
    offsets_ = offsets.data;
    lengths_ = lengths.data;
    capacity_ = static_cast<uint32_t>(capacity);
    slotSize_ = slotSize;
    headroom_ = headroom;
    maxFrame_ = slotSize - headroom;
    bufferRef_ = Napi::Persistent(buffer);
    offsetsRef_ = Napi::Persistent(info[1].As<Napi::Object>());
    lengthsRef_ = Napi::Persistent(info[2].As<Napi::Object>());
  }

  Napi::Value BindHandles(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    U32View view = ViewOf(env, info[0], "handles");
    size_t slot = 0;
    while (slot < bound_.size() && !bound_[slot].ref.IsEmpty()) slot++;
    if (slot == bound_.size()) bound_.emplace_back();
    bound_[slot].view = view;
    bound_[slot].ref = Napi::Persistent(info[0].As<Napi::Object>());
    return Napi::Number::New(env, static_cast<double>(slot + 1));
  }

  void UnbindHandles(const Napi::CallbackInfo& info) {
    uint32_t id = ArgU32(info, 0, "id");
    if (id == 0 || id > bound_.size() || bound_[id - 1].ref.IsEmpty()) ThrowRange(info.Env(), "unknown handles id " + std::to_string(id));
    bound_[id - 1].ref.Reset();
    bound_[id - 1].view = U32View();
  }

  // ---- batched I/O (hot path: no allocation, no JS objects on success)

  Napi::Value ReadBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    U32View handles = HandlesArg(info, 1);
    uint32_t count = ArgU32(info, 2, "count");
    RequirePool(env);
    if (count > handles.length) ThrowRange(env, "count exceeds handles.length");
    const uint32_t* hs = handles.data;
    for (uint32_t i = 0; i < count; i++) {
      if (hs[i] >= capacity_) ThrowRange(env, "handle " + std::to_string(hs[i]) + " out of range");
    }
    uint32_t filled = 0;
    uint32_t dropped = 0;  // oversized frames skipped; bounded so the call ends
    while (filled < count) {
      uint32_t h = hs[filled];
      uint32_t off = h * slotSize_ + headroom_;
      // One readv(2) per frame: the slot, then a 1-byte sentinel. A TAP
      // copies at most the buffer's size and returns the copied length, so
      // a frame larger than the slot would otherwise arrive silently
      // truncated; reaching the sentinel tells us it did.
      struct iovec iov[2] = {{base_ + off, maxFrame_}, {sentinel_, 1}};
      ssize_t r = readv(fd, iov, 2);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (filled > 0) break;  // return what we have; the error recurs next call
        throw ErrnoError(env, err, "read");
      }
      if (r == 0) break;  // EOF (not a TAP) or empty datagram: nothing to deliver
      if (static_cast<size_t>(r) > maxFrame_) {
        // Larger than a slot (MTU above slotSize − headroom − 14, or GSO):
        // the rest is lost, so drop it, count it and reuse the slot.
        oversized_++;
        if (++dropped > count) break;
        continue;
      }
      offsets_[h] = off;
      lengths_[h] = static_cast<uint32_t>(r);
      filled++;
    }
    return Napi::Number::New(env, filled);
  }

  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    U32View handles = HandlesArg(info, 1);
    uint32_t count = ArgU32(info, 2, "count");
    RequirePool(env);
    if (count > handles.length) ThrowRange(env, "count exceeds handles.length");
    if (count > 65535) ThrowRange(env, "count must be < 65536");
    const uint32_t* hs = handles.data;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t h = hs[i];
      if (h >= capacity_) ThrowRange(env, "handle " + std::to_string(h) + " out of range");
      if (static_cast<size_t>(offsets_[h]) + lengths_[h] > byteLength_) ThrowRange(env, "frame " + std::to_string(h) + " lies outside the pool");
    }
    uint32_t consumed = 0;
    uint32_t failed = 0;
    while (consumed < count) {
      uint32_t h = hs[consumed];
      ssize_t r = write(fd, base_ + offsets_[h], lengths_[h]);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        failed++;  // hard error: the frame is consumed, not retried
      }
      consumed++;
    }
    return Napi::Number::New(env, static_cast<double>(consumed) + 65536.0 * failed);
  }

  // ---- devices

  Napi::Value OpenTap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsString()) ThrowType(env, "name must be a string");
      name = info[0].As<Napi::String>().Utf8Value();
    }
    if (name.size() >= IFNAMSIZ) ThrowRange(env, "interface name longer than 15 bytes: " + name);
    bool vnetHdr = false;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Value v = info[1].As<Napi::Object>().Get("vnetHdr");
      vnetHdr = v.ToBoolean().Value();
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
    ifr.ifr_name[IFNAMSIZ - 1] = 0;
    Napi::Object out = Napi::Object::New(env);
    out.Set("fd", Napi::Number::New(env, fd));
    out.Set("name", Napi::String::New(env, ifr.ifr_name));
    return out;
  }

  void Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    // A watcher must never outlive its fd (the number could be reused).
    std::vector<uint32_t> ids;
    for (auto& kv : watchers_) if (kv.second->fd == fd) ids.push_back(kv.first);
    for (uint32_t id : ids) StopWatcher(id);
    if (::close(fd) < 0 && errno != EINTR) throw ErrnoError(env, errno, "close");
  }

  // ---- readiness

  Napi::Value PollStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    if (!info[1].IsFunction()) ThrowType(env, "cb must be a function");
    if (loopState_->tearingDown) throw Napi::Error::New(env, "usernet: environment is shutting down");
    Watcher* w = new Watcher();
    w->env = env;
    w->loopState = loopState_;
    w->fd = fd;
    w->handle.data = w;
    int rc = uv_poll_init(loopState_->loop, &w->handle, fd);
    if (rc < 0) {
      delete w;  // uv_poll_init failed before registering the handle
      Napi::Error e = Napi::Error::New(env, std::string(uv_err_name(rc)) + ": " + uv_strerror(rc) + ", uv_poll_init");
      e.Set("code", Napi::String::New(env, uv_err_name(rc)));
      e.Set("syscall", Napi::String::New(env, "uv_poll_init"));
      throw e;
    }
    rc = uv_poll_start(&w->handle, UV_READABLE, OnPoll);
    if (rc < 0) {
      loopState_->closing++;
      uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnWatcherClosed);
      Napi::Error e = Napi::Error::New(env, std::string(uv_err_name(rc)) + ": " + uv_strerror(rc) + ", uv_poll_start");
      e.Set("code", Napi::String::New(env, uv_err_name(rc)));
      e.Set("syscall", Napi::String::New(env, "uv_poll_start"));
      throw e;
    }
    napi_value resourceName;
    napi_create_string_utf8(env, "usernet:poll", NAPI_AUTO_LENGTH, &resourceName);
    napi_async_init(env, nullptr, resourceName, &w->asyncContext);
    w->cb = Napi::Persistent(info[1].As<Napi::Function>());
    w->id = nextWatcherId_++;
    watchers_[w->id] = w;
    return Napi::Number::New(env, w->id);
  }

  void PollStop(const Napi::CallbackInfo& info) {
    uint32_t id = ArgU32(info, 0, "id");
    if (!StopWatcher(id)) ThrowRange(info.Env(), "unknown watcher id " + std::to_string(id));
  }

  // Releases the JS references now (the env is alive) and frees the uv
  // handle in its close callback.
  bool StopWatcher(uint32_t id) {
    auto it = watchers_.find(id);
    if (it == watchers_.end()) return false;
    Watcher* w = it->second;
    watchers_.erase(it);
    ReleaseWatcher(w);
    return true;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("oversized", Napi::Number::New(env, oversized_));
    out.Set("watchers", Napi::Number::New(env, static_cast<double>(watchers_.size())));
    return out;
  }

  static void AsyncCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    Usernet* self = static_cast<Usernet*>(arg);
    LoopState* ls = self->loopState_;
    ls->tearingDown = true;
    for (auto& kv : self->watchers_) ReleaseWatcher(kv.second);
    self->watchers_.clear();
    MaybeFinishTeardown(ls);  // frees ls now if nothing is closing
  }
};

}  // namespace

NODE_API_ADDON(Usernet)
