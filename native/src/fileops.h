// fileops.h: registration hook for fd-level file operations. Holds no state and no fds;
// see fileops.cc for the charter.
#pragma once

#include <napi.h>

namespace fanrecall {

void RegisterFileops(Napi::Env env, Napi::Object exports, Napi::Object constants);

}  // namespace fanrecall
