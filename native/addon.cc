// usernet native addon: moves Ethernet frames between file descriptors (TAP
// devices, AF_PACKET sockets, unix sockets) and the JS FramePool, in
// batches, and reports readiness through libuv. UDP tunnels (the VXLAN
// underlay) move datagram payloads in and whole IPv4 packets out the same
// way. Unix sockets speak QEMU's netdev protocols: `stream` (a 4-byte
// big-endian length in front of every frame on a SOCK_STREAM connection)
// and `dgram` (one frame per SOCK_DGRAM datagram).
//
// This file: the N-API class (pool and handle-array binding, dispatch of
// readBatch/writeBatch to the fd's device, close, watchers, stats). One
// device object per open fd, one file per kind: tap.cc, packet.cc,
// tunnel.cc, unix.cc (datagram sockets, listeners), stream.cc (framed
// streams); core.h/.cc the shared batch I/O core; watch.h/.cc readiness;
// open.h/.cc what the openers share.
//
// The contract (argument meanings, return values, errors) is written down
// in src/io/native.ts; each file starts with its part of it. In short:
//   bindPool(buffer, offsets, lengths, slotSize, headroom, {meta, smallCapacity, largeSlotSize})
//   bindHandles(arr) -> id                    (hot-path handle arrays)
//   readBatch(fd, handles|id, count, large?, largeCount?) -> n + 65536 * largeUsed
//   writeBatch(fd, handles|id, count) -> consumed + 65536 * failed
//   pollStart(fd, cb) -> id,  pollStop(id)
//   openTap(name, {vnetHdr, offload}) -> {fd, name, offloads},  close(fd)
//   openPacket(ifname, {netns, promisc}) -> {fd, ifindex, mac}
//   openSocketIn(netns, 'udp'|'tcp', ip, port) -> fd
//   openTunnel(ip, port, {netns}) -> {fd, port}   (UDP in, raw IPv4 out)
//   openUnixDgram(localPath, remotePath) -> {fd}  (QEMU -netdev dgram)
//   listenUnixStream(path) -> {fd},  acceptUnixStream(listenFd) -> {fd}|null
//                                                 (QEMU -netdev stream)
//   stats() -> {oversized, badVnet, noGso, watchers}
//
// Contract, the pool part:
// - bindPool() is called once with the FramePool's ArrayBuffer and its
//   offsets/lengths arrays; the addon keeps raw pointers (and references so
//   the GC keeps them alive). Every later call passes only integer handles.
//   Never transfer (detach) a bound buffer. Calling it again rebinds. The
//   optional 6th argument binds the pool's annotations (`meta`: 12 bytes
//   per handle, a virtio-net header in host order, see
//   src/dataplane/pool.ts) and its large slots (handles ≥ smallCapacity are
//   largeSlotSize bytes each, after the small ones).
// - Handle arrays: readBatch/writeBatch take `handles` either as a
//   Uint32Array (looked at on every call) or as the id that bindHandles(arr)
//   returned for it (the pointer is captured once). unbindHandles(id)
//   releases the array. Handles are checked against the pool's capacity
//   (RangeError before any I/O).
//
// Build: binding.gyp (node-addon-api, C++ exceptions on, NAPI_VERSION 8).

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core.h"
#include "open.h"
#include "watch.h"

namespace usernet {

namespace {

class Usernet : public Napi::Addon<Usernet> {
 public:
  Usernet(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
        InstanceMethod("bindPool", &Usernet::BindPool),
        InstanceMethod("bindHandles", &Usernet::BindHandles),
        InstanceMethod("unbindHandles", &Usernet::UnbindHandles),
        InstanceMethod("readBatch", &Usernet::ReadBatch),
        InstanceMethod("writeBatch", &Usernet::WriteBatch),
        InstanceMethod("openTap", &Usernet::Opener<OpenTap>),
        InstanceMethod("openPacket", &Usernet::Opener<OpenPacket>),
        InstanceMethod("openSocketIn", &Usernet::Opener<OpenSocketIn>),
        InstanceMethod("openTunnel", &Usernet::Opener<OpenTunnel>),
        InstanceMethod("openUnixDgram", &Usernet::Opener<OpenUnixDgram>),
        InstanceMethod("listenUnixStream", &Usernet::Opener<ListenUnixStream>),
        InstanceMethod("acceptUnixStream", &Usernet::Opener<AcceptUnixStream>),
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
  Core core_;
  DeviceTable devices_;
  Napi::Reference<Napi::ArrayBuffer> bufferRef_;
  Napi::ObjectReference offsetsRef_;
  Napi::ObjectReference lengthsRef_;
  Napi::ObjectReference metaRef_;

  struct BoundHandles {
    U32View view;
    Napi::ObjectReference ref;
  };
  std::vector<BoundHandles> bound_;  // index = id − 1; empty ref = free slot

  LoopState* loopState_;
  std::unordered_map<uint32_t, Watcher*> watchers_;
  uint32_t nextWatcherId_ = 1;

  template <Napi::Value (*Open)(const Napi::CallbackInfo&, DeviceTable&)>
  Napi::Value Opener(const Napi::CallbackInfo& info) {
    return Open(info, devices_);
  }

  void RequirePool(Napi::Env env) {
    if (core_.base == nullptr) throw Napi::Error::New(env, "usernet: bindPool() has not been called");
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
    // optional: {meta: Uint16Array (6 per handle), smallCapacity, largeSlotSize}
    size_t small = capacity;
    uint32_t largeSlotSize = slotSize;
    uint8_t* meta = nullptr;
    Napi::Object metaObj;
    if (info.Length() > 5 && info[5].IsObject()) {
      Napi::Object o = info[5].As<Napi::Object>();
      Napi::Value m = o.Get("meta");
      if (!m.IsUndefined()) {
        if (!m.IsTypedArray() || m.As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) ThrowType(env, "meta must be a Uint16Array");
        Napi::Uint16Array ma = m.As<Napi::Uint16Array>();
        if (ma.ElementLength() < capacity * 6) ThrowRange(env, "meta is shorter than 6 * capacity");
        meta = reinterpret_cast<uint8_t*>(ma.Data());
        metaObj = ma;
      }
      Napi::Value sc = o.Get("smallCapacity");
      if (sc.IsNumber()) small = sc.As<Napi::Number>().Uint32Value();
      Napi::Value ls = o.Get("largeSlotSize");
      if (ls.IsNumber()) largeSlotSize = ls.As<Napi::Number>().Uint32Value();
      if (small > capacity || largeSlotSize < slotSize) ThrowRange(env, "need smallCapacity <= capacity and largeSlotSize >= slotSize");
    }
    if (capacity == 0 || capacity > UINT32_MAX / slotSize ||
        static_cast<uint64_t>(small) * slotSize + static_cast<uint64_t>(capacity - small) * largeSlotSize > byteLength) {
      ThrowRange(env, "buffer is smaller than capacity * slotSize");
    }
    Core& c = core_;
    c.base = static_cast<uint8_t*>(buffer.Data());
    c.byteLength = byteLength;
    c.offsets = offsets.data;
    c.lengths = lengths.data;
    c.capacity = static_cast<uint32_t>(capacity);
    c.slotSize = slotSize;
    c.headroom = headroom;
    c.maxFrame = slotSize - headroom;
    c.smallCap = static_cast<uint32_t>(small);
    c.largeSlotSize = largeSlotSize;
    c.largeBase = static_cast<size_t>(small) * slotSize;
    c.maxLarge = largeSlotSize - headroom;
    c.meta = meta;
    bufferRef_ = Napi::Persistent(buffer);
    offsetsRef_ = Napi::Persistent(info[1].As<Napi::Object>());
    lengthsRef_ = Napi::Persistent(info[2].As<Napi::Object>());
    if (meta != nullptr) metaRef_ = Napi::Persistent(metaObj);
    else metaRef_.Reset();
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
    uint32_t* hs = handles.data;
    for (uint32_t i = 0; i < count; i++) {
      if (hs[i] >= core_.capacity) ThrowRange(env, "handle " + std::to_string(hs[i]) + " out of range");
    }
    // optional large spares (handles of large slots): where a super-frame's
    // bytes beyond a small slot go (TAPs with offloads, packet sockets)
    uint32_t* large = nullptr;
    uint32_t largeCount = 0;
    if (info.Length() > 4 && !info[3].IsUndefined()) {
      U32View lv = HandlesArg(info, 3);
      largeCount = ArgU32(info, 4, "largeCount");
      if (largeCount > lv.length) ThrowRange(env, "largeCount exceeds large.length");
      for (uint32_t i = 0; i < largeCount; i++) {
        if (lv.data[i] >= core_.capacity || lv.data[i] < core_.smallCap) ThrowRange(env, "large handle " + std::to_string(lv.data[i]) + " is not a large slot");
      }
      large = lv.data;
    }
    for (uint32_t i = 0; i < count; i++) {
      if (hs[i] >= core_.smallCap && large != nullptr) ThrowRange(env, "with large spares, handles must be small slots");
    }
    PlainDevice plain(fd);  // an fd the addon did not open
    Device* d = devices_.Get(fd);
    if (d == nullptr) d = &plain;
    ReadResult r = d->Read(core_, hs, count, large, largeCount);
    if (r.range != nullptr) ThrowRange(env, r.range);
    if (r.notSock) {
      // Not (any more) the socket that was opened: the number was closed
      // behind our back and reused. Forget it and read it like any fd.
      devices_.Take(fd);
      ReadResult rest = ReadPlain(core_, fd, hs + r.filled, count - r.filled);
      r.filled += rest.filled;
      r.err = rest.err;
      r.syscall = rest.syscall;
    }
    if (r.err != 0) throw ErrnoError(env, r.err, r.syscall);
    return Napi::Number::New(env, static_cast<double>(r.filled) + 65536.0 * r.largeUsed);
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
      if (h >= core_.capacity) ThrowRange(env, "handle " + std::to_string(h) + " out of range");
      if (static_cast<size_t>(core_.offsets[h]) + core_.lengths[h] > core_.byteLength) ThrowRange(env, "frame " + std::to_string(h) + " lies outside the pool");
    }
    PlainDevice plain(fd);  // an fd the addon did not open
    Device* d = devices_.Get(fd);
    if (d == nullptr) d = &plain;
    WriteResult w = d->Write(core_, hs, count);
    if (w.notSock) {
      // as in ReadBatch: forget it and write the rest like any fd
      devices_.Take(fd);
      WritePlain(core_, fd, hs, count, &w);
    }
    return Napi::Number::New(env, static_cast<double>(w.consumed) + 65536.0 * w.failed);
  }

  void Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    std::unique_ptr<Device> d = devices_.Take(fd);
    // A watcher must never outlive its fd (the number could be reused).
    std::vector<uint32_t> ids;
    for (auto& kv : watchers_) if (kv.second->fd == fd) ids.push_back(kv.first);
    for (uint32_t id : ids) StopWatcher(id);
    // a tunnel's send socket and a bound unix socket's file go with it
    int err = d ? d->Close() : PlainDevice(fd).Close();
    if (err != 0) throw ErrnoError(env, err, "close");
  }

  // ---- readiness

  Napi::Value PollStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    if (!info[1].IsFunction()) ThrowType(env, "cb must be a function");
    if (loopState_->tearingDown) throw Napi::Error::New(env, "usernet: environment is shutting down");
    Watcher* w = StartWatcher(env, loopState_, fd, info[1].As<Napi::Function>(), devices_.Get(fd));
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
    out.Set("oversized", Napi::Number::New(env, core_.oversized));
    out.Set("badVnet", Napi::Number::New(env, core_.badVnet));
    out.Set("noGso", Napi::Number::New(env, core_.noGso));
    out.Set("watchers", Napi::Number::New(env, static_cast<double>(watchers_.size())));
    return out;
  }

  static void AsyncCleanup(napi_async_cleanup_hook_handle /*handle*/, void* arg) {
    Usernet* self = static_cast<Usernet*>(arg);
    LoopState* ls = self->loopState_;
    ls->tearingDown = true;
    for (auto& kv : self->watchers_) ReleaseWatcher(kv.second);
    self->watchers_.clear();
    MaybeFinishTeardown(ls);  // frees ls now if nothing is closing
  }
};

}  // namespace

}  // namespace usernet

using UsernetAddon = usernet::Usernet;  // the macro pastes the name into identifiers
NODE_API_ADDON(UsernetAddon)
