// fanotify.h: fanotify constants missing from Debian 12's 6.1 uapi headers, and the
// registration hook for the fanotify bindings.
//
// Owns: the #ifndef-guarded definitions of pre-content era constants (kernel >= 6.14) and
// the range info record layout. Values verified on the target 6.18 kernel
// (see shared/reference/kernel.md).
// Must not: hold state. Holds no fds.
#pragma once

#include <napi.h>
#include <sys/fanotify.h>

#include <cstdint>

#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_EVENT_INFO_TYPE_RANGE
#define FAN_EVENT_INFO_TYPE_RANGE 6
#endif
#ifndef FAN_REPORT_FD_ERROR
#define FAN_REPORT_FD_ERROR 0x00002000
#endif
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif
#ifndef FAN_MARK_IGNORED_SURV_MODIFY
#define FAN_MARK_IGNORED_SURV_MODIFY 0x00000040
#endif

namespace fanrecall {

// Layout of a FAN_EVENT_INFO_TYPE_RANGE record (struct fanotify_event_info_range upstream).
struct FanRangeInfo {
  struct fanotify_event_info_header hdr;
  uint32_t pad;
  uint64_t offset;
  uint64_t count;
};

void RegisterFanotify(Napi::Env env, Napi::Object exports, Napi::Object constants);

}  // namespace fanrecall
