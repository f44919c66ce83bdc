// process.cc: process attributes the unprivileged halves set on themselves at startup.
//
// Owns: prctl(PR_SET_DUMPABLE, 0). A non-dumpable process's /proc/PID files (environ, mem,
// fd, maps...) belong to root and it cannot be ptraced, not even by its own uid: the recall
// service and the embedded store hold the S3 secret. No getter: production never reads it back.
// Must not: decide when to call it, or touch any other attribute.
// Holds no fds.
#include "process.h"

#include <sys/prctl.h>

#include "errno-error.h"
#include "register.h"

namespace fanrecall {
namespace {

Napi::Value SetNonDumpable(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) ThrowErrno(info.Env(), errno, "prctl");
  return info.Env().Undefined();
}

}  // namespace

void RegisterProcess(Napi::Env env, Napi::Object exports) {
  SetFunctions(env, exports, {{"setNonDumpable", SetNonDumpable}});
}

}  // namespace fanrecall
