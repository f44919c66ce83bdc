// fdpass.h: registration hook for the unix SOCK_SEQPACKET and SCM_RIGHTS bindings.
// Holds no state and no fds; see fdpass.cc for the charter.
#pragma once

#include <napi.h>

namespace fanrecall {

void RegisterFdpass(Napi::Env env, Napi::Object exports);

}  // namespace fanrecall
