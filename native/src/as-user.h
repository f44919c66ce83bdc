// as-user.h: registration hook for resolving paths with another user's credentials. Holds no
// state and no fds; see as-user.cc for the charter.
#pragma once

#include <napi.h>

namespace fanrecall {

void RegisterAsUser(Napi::Env env, Napi::Object exports);

}  // namespace fanrecall
