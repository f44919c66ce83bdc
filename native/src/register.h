// register.h: table-driven registration of binding functions and header constants.
//
// Owns: the two helpers every module's Register* uses to put functions on `exports` and
// numeric constants (taken from the C headers at build time) on `constants`.
// Must not: perform syscalls or hold state. Holds no fds.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <utility>

namespace fanrecall {

using Binding = std::pair<const char*, Napi::Function::Callback>;
using Constant = std::pair<const char*, double>;

inline void SetFunctions(Napi::Env env, Napi::Object target, std::initializer_list<Binding> functions) {
  for (const auto& [name, fn] : functions) target.Set(name, Napi::Function::New(env, fn, name));
}

inline void SetConstants(Napi::Env env, Napi::Object target, std::initializer_list<Constant> values) {
  for (const auto& [name, value] : values) target.Set(name, Napi::Number::New(env, value));
}

#define FANRECALL_CONSTANT(name) fanrecall::Constant(#name, static_cast<double>(name))

}  // namespace fanrecall
