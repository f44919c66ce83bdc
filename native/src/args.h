// args.h: argument checking shared by every binding function.
//
// Owns: turning JS arguments into C types, throwing TypeError/RangeError on misuse
// (the typed facade in native/index.ts should make these unreachable).
// Must not: perform syscalls or hold state.
// Holds no fds.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace fanrecall {

inline double ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) > 9007199254740991.0) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be a safe integer");
  }
  return d;
}

template <typename T>
T ArgRanged(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double d = ArgInteger(info, i, what);
  if (d < static_cast<double>(std::numeric_limits<T>::min()) || d > static_cast<double>(std::numeric_limits<T>::max())) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " out of range");
  }
  return static_cast<T>(d);
}

inline int ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what) { return ArgRanged<int>(info, i, what); }
inline uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return ArgRanged<uint32_t>(info, i, what);
}
inline int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return ArgRanged<int64_t>(info, i, what);
}

inline std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

struct Bytes {
  uint8_t* data;
  size_t len;
};

inline Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array");
  }
  Napi::Uint8Array arr = v.As<Napi::Uint8Array>();
  return Bytes{arr.Data(), arr.ElementLength()};
}

}  // namespace fanrecall
