// usernet native addon: readiness through libuv (see watch.h).

#include "watch.h"

#include <string>

namespace usernet {

namespace {

void OnPoll(uv_poll_t* h, int status, int events);

void OnWatcherClosed(uv_handle_t* h) {
  Watcher* w = static_cast<Watcher*>(h->data);
  LoopState* ls = w->loopState;
  delete w;
  ls->closing--;
  MaybeFinishTeardown(ls);
}

void FinishRelease(Watcher* w) {
  w->cb.Reset();
  if (w->asyncContext != nullptr) napi_async_destroy(w->env, w->asyncContext);
  w->asyncContext = nullptr;
  w->loopState->closing++;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnWatcherClosed);
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Watcher* w = static_cast<Watcher*>(h->data);
  // A framed stream with pending bytes: writable means the tail of the
  // frame a partial write cut can go out now. That is the addon's business
  // alone; JS hears only about readability.
  if (status >= 0 && (events & UV_WRITABLE) != 0 && w->device != nullptr) {
    w->device->FlushPending();
    if (!w->device->HasPending()) SetWritable(w, false);
    if ((events & (UV_READABLE | UV_DISCONNECT)) == 0) return;
  }
  // status < 0 (UV_EBADF on POLLERR, e.g. a TAP whose device was deleted):
  // libuv has already stopped the watcher. We still call cb so that its
  // readBatch surfaces the real error (EBADFD) to JS. Packet sockets are
  // re-armed after cb (see below).
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
  if (w->stopPending) {
    FinishRelease(w);
  } else if (status < 0 && w->rearmOnError) {
    // A packet socket reports POLLERR when its interface goes down
    // (ENETDOWN, consumed by the read cb just made). The socket stays bound
    // and receives again once the link is up, so keep watching. Should the
    // error still be pending (cb did not read), it fires again next turn,
    // level-triggered like readability.
    uv_poll_start(&w->handle, w->writable ? (UV_READABLE | UV_WRITABLE) : UV_READABLE, OnPoll);
  }
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

Napi::Error UvError(Napi::Env env, int rc, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(uv_err_name(rc)) + ": " + uv_strerror(rc) + ", " + syscall);
  e.Set("code", Napi::String::New(env, uv_err_name(rc)));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

}  // namespace

void SetWritable(Watcher* w, bool on) {
  if (w->writable == on || w->stopPending) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&w->handle)) == 0) return;
  w->writable = on;
  uv_poll_start(&w->handle, on ? (UV_READABLE | UV_WRITABLE) : UV_READABLE, OnPoll);
}

void ReleaseWatcher(Watcher* w) {
  uv_poll_stop(&w->handle);
  if (w->device != nullptr) w->device->watcher = nullptr;
  w->device = nullptr;
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

Watcher* StartWatcher(Napi::Env env, LoopState* ls, int fd, Napi::Function cb, Device* device) {
  Watcher* w = new Watcher();
  w->env = env;
  w->loopState = ls;
  w->fd = fd;
  w->rearmOnError = device != nullptr && device->RearmOnError();
  w->handle.data = w;
  int rc = uv_poll_init(ls->loop, &w->handle, fd);
  if (rc < 0) {
    delete w;  // uv_poll_init failed before registering the handle
    throw UvError(env, rc, "uv_poll_init");
  }
  bool flushes = device != nullptr && device->FlushesWhenWritable();
  bool pending = flushes && device->HasPending();
  rc = uv_poll_start(&w->handle, pending ? (UV_READABLE | UV_WRITABLE) : UV_READABLE, OnPoll);
  if (rc < 0) {
    ls->closing++;
    uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnWatcherClosed);
    throw UvError(env, rc, "uv_poll_start");
  }
  napi_value resourceName;
  napi_create_string_utf8(env, "usernet:poll", NAPI_AUTO_LENGTH, &resourceName);
  napi_async_init(env, nullptr, resourceName, &w->asyncContext);
  w->cb = Napi::Persistent(cb);
  if (flushes) {
    // a framed stream's watcher also flushes its pending bytes when writable
    w->device = device;
    w->writable = pending;
    device->watcher = w;
  }
  return w;
}

}  // namespace usernet
