// errno-error.h: the one way native code reports a failed syscall to JS.
//
// Owns: building an Error shaped like Node's system errors:
//   message 'EIO: i/o error, fanotify_mark', code 'EIO', errno 5 (positive), syscall 'fanotify_mark'.
// Wording comes from libuv (as in Node), the code name from glibc, so errnos that libuv
// does not know still get a proper code.
// Must not: log, retry, or decide what an errno means for the caller.
// Holds no fds.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstring>
#include <string>

namespace fanrecall {

inline Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* detail = nullptr) {
  const char* name = strerrorname_np(err);
  std::string code = name != nullptr ? name : "UNKNOWN";
  char desc[128];
  uv_strerror_r(-err, desc, sizeof desc);
  std::string message = code + ": " + desc + ", " + syscall;
  if (detail != nullptr) message += std::string(" (") + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", code);
  obj.Set("errno", Napi::Number::New(env, err));
  obj.Set("syscall", syscall);
  return error;
}

[[noreturn]] inline void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* detail = nullptr) {
  throw ErrnoError(env, err, syscall, detail);
}

}  // namespace fanrecall
