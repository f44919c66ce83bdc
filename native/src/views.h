// views.h: registration hook for private mounts, handle reopens and leases. Holds no state
// and no fds; see views.cc for the charter.
#pragma once

#include <napi.h>

namespace fanrecall {

void RegisterViews(Napi::Env env, Napi::Object exports, Napi::Object constants);

}  // namespace fanrecall
