// usernet native addon: readiness (pollStart/pollStop) through libuv.
//
// Contract (src/io/native.ts has the whole text):
// - pollStart(fd, cb) watches fd for readability with uv_poll on the main
//   loop and calls cb() (no arguments) each time it is readable
//   (level-triggered: again on the next loop turn while frames wait); also
//   once on an error condition (the TAP's device was deleted): libuv then
//   stops the watcher and the next readBatch throws (EBADFD). A packet
//   socket's, a tunnel's and a unix datagram socket's watcher is re-armed
//   instead (Device::RearmOnError). An exception thrown by cb goes to
//   process 'uncaughtException'. Returns a watcher id for pollStop(id),
//   which stops and releases it (callable from inside cb); a stopped
//   watcher does not keep the process alive.
// - A framed unix stream's watcher (Device::FlushesWhenWritable) also
//   watches writability while the stream has pending bytes, and flushes
//   them by itself; cb hears only about readability.

#ifndef USERNET_NATIVE_WATCH_H_
#define USERNET_NATIVE_WATCH_H_

#include <napi.h>
#include <uv.h>

#include <cstdint>

#include "core.h"

namespace usernet {

// Per-env bookkeeping that must outlive the addon instance: close callbacks
// of uv handles can run after the instance data is finalized at env
// teardown, so they only ever touch this and the watcher itself.
struct LoopState {
  uv_loop_t* loop = nullptr;
  int closing = 0;  // uv handles closed whose close callback has not run
  bool tearingDown = false;
  napi_async_cleanup_hook_handle hook = nullptr;
};

struct Watcher {
  uv_poll_t handle;
  napi_env env;
  Napi::FunctionReference cb;
  napi_async_context asyncContext = nullptr;
  LoopState* loopState;
  uint32_t id;
  int fd;
  bool inCallback = false;    // cb is running (pollStop from inside cb is deferred)
  bool stopPending = false;
  bool rearmOnError = false;  // a packet socket or tunnel: an error condition is transient
  Device* device = nullptr;   // a framed stream: flush its pending bytes when writable
  bool writable = false;      // also watching for writability (framed: bytes pending)
};

// A started watcher on fd calling cb (device: the addon's device for fd, or
// null). Throws an errno-shaped Error when libuv refuses.
Watcher* StartWatcher(Napi::Env env, LoopState* ls, int fd, Napi::Function cb, Device* device);

// Watch w's fd for writability too (a framed stream with pending bytes), or
// stop. Never restarts a watcher libuv stopped (error condition) or that is
// being released.
void SetWritable(Watcher* w, bool on);

// Stops watching now; drops the JS references and closes the uv handle now,
// or right after cb returns when called from inside cb.
void ReleaseWatcher(Watcher* w);

// At env teardown, once no uv handle is closing any more: frees ls.
void MaybeFinishTeardown(LoopState* ls);

}  // namespace usernet

#endif  // USERNET_NATIVE_WATCH_H_
