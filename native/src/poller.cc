// poller.cc: FdPoller implementation (charter in poller.h).
//
// Callbacks go through MakeCallback with an async context, so nextTicks and microtasks
// queued by the callback drain before libuv moves on. An exception thrown by the callback
// is handed to napi_fatal_exception, i.e. it becomes a normal 'uncaughtException'.
// While started, the JS object is strongly referenced (it cannot be collected mid-poll) and
// the handle keeps the loop alive unless unref()'d. A poll error (status < 0) stops the
// poller and is passed to the callback as a NativeError argument.
#include "poller.h"

#include <vector>

#include "args.h"
#include "errno-error.h"

namespace fanrecall {

void FdPoller::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "FdPoller",
                                    {
                                        InstanceMethod("start", &FdPoller::Start),
                                        InstanceMethod("stop", &FdPoller::Stop),
                                        InstanceMethod("close", &FdPoller::Close),
                                        InstanceMethod("ref", &FdPoller::RefHandle),
                                        InstanceMethod("unref", &FdPoller::UnrefHandle),
                                    });
  exports.Set("FdPoller", ctor);
}

FdPoller::FdPoller(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<FdPoller>(info), context_(info.Env(), "FdPoller") {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onReadable must be a function");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "FdPoller: no libuv loop");
  }
  auto* handle = new uv_poll_t;
  int r = uv_poll_init(loop, handle, fd);
  if (r < 0) {
    delete handle;
    ThrowErrno(env, -r, "uv_poll_init");
  }
  handle->data = this;
  handle_ = handle;
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
}

FdPoller::~FdPoller() { CloseHandle(); }

void FdPoller::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<FdPoller*>(handle->data);
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  Napi::Object self_object = self->Value();  // strongly referenced while started
  std::vector<napi_value> args;
  if (status < 0) {
    self->StopPolling();
    args.push_back(ErrnoError(env, -status, "uv_poll").Value());
  }
  try {
    self->callback_.MakeCallback(self_object, args, self->context_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

void FdPoller::OnClose(uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); }

void FdPoller::StopPolling() {
  if (handle_ == nullptr || !active_) return;
  uv_poll_stop(handle_);
  active_ = false;
  Unref();
}

void FdPoller::CloseHandle() {
  if (handle_ == nullptr) return;
  uv_poll_stop(handle_);
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), OnClose);
  handle_ = nullptr;
}

Napi::Value FdPoller::Start(const Napi::CallbackInfo& info) {
  if (handle_ == nullptr) ThrowErrno(info.Env(), EBADF, "uv_poll_start", "poller is closed");
  int r = uv_poll_start(handle_, UV_READABLE, OnPoll);
  if (r < 0) ThrowErrno(info.Env(), -r, "uv_poll_start");
  if (!active_) {
    active_ = true;
    Ref();
  }
  return info.Env().Undefined();
}

Napi::Value FdPoller::Stop(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

Napi::Value FdPoller::Close(const Napi::CallbackInfo& info) {
  StopPolling();
  CloseHandle();
  return info.Env().Undefined();
}

Napi::Value FdPoller::RefHandle(const Napi::CallbackInfo& info) {
  if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
  return info.Env().Undefined();
}

Napi::Value FdPoller::UnrefHandle(const Napi::CallbackInfo& info) {
  if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  return info.Env().Undefined();
}

}  // namespace fanrecall
