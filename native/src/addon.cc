// addon.cc: module entry point for fanrecall_native.
//
// Owns: InitAll only, which asks each module to register its functions, and the shared
// `constants` object (values taken from the C headers at build time).
// Must not: contain any syscall or logic of its own.
// Holds no fds.
#include <napi.h>

#include "as-user.h"
#include "fanotify.h"
#include "fdpass.h"
#include "fileops.h"
#include "poller.h"
#include "process.h"
#include "views.h"

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  Napi::Object constants = Napi::Object::New(env);
  fanrecall::RegisterFanotify(env, exports, constants);
  fanrecall::RegisterFdpass(env, exports);
  fanrecall::RegisterFileops(env, exports, constants);
  fanrecall::FdPoller::Register(env, exports);
  fanrecall::RegisterViews(env, exports, constants);
  fanrecall::RegisterProcess(env, exports);
  fanrecall::RegisterAsUser(env, exports);
  exports.Set("constants", constants);
  return exports;
}

NODE_API_MODULE(fanrecall_native, InitAll)
