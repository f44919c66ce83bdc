// poller.h: FdPoller, a uv_poll_t readability watcher on the main libuv loop.
//
// Owns: one uv_poll_t per instance (heap allocated, freed in its uv_close callback) and the
// JS callback reference. Level-triggered: the callback runs once per loop iteration while
// the fd is readable, so JS must drain the fd (read until EAGAIN) or stop().
// Must not: read from or close the fd it watches (JS owns it and must close() the poller
// before closing the fd), create threads or timers, or swallow callback exceptions.
// Fds: borrows one fd; holds none of its own.
#pragma once

#include <napi.h>
#include <uv.h>

namespace fanrecall {

class FdPoller : public Napi::ObjectWrap<FdPoller> {
 public:
  static void Register(Napi::Env env, Napi::Object exports);
  explicit FdPoller(const Napi::CallbackInfo& info);
  ~FdPoller() override;

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnClose(uv_handle_t* handle);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value RefHandle(const Napi::CallbackInfo& info);
  Napi::Value UnrefHandle(const Napi::CallbackInfo& info);
  void StopPolling();
  void CloseHandle();

  uv_poll_t* handle_ = nullptr;
  bool active_ = false;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

}  // namespace fanrecall
