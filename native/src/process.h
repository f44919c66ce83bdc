// process.h: registration hook for process attributes (PR_SET_DUMPABLE). Holds no state
// and no fds; see process.cc for the charter.
#pragma once

#include <napi.h>

namespace fanrecall {

void RegisterProcess(Napi::Env env, Napi::Object exports);

}  // namespace fanrecall
