// fanotify.cc: fanotify_init, fanotify_mark, the non-blocking batch read, and the response write.
//
// Owns: the syscalls on a fanotify group fd and the parsing of event records (version check,
// bounds-checked info record walk, range records). Event fds are handed to JS untouched
// (negative values are -errno under FAN_REPORT_FD_ERROR); pidfd records, which JS never
// asks for, are closed here so they cannot leak.
// Must not: decide verdicts, filter events, poll, log, or keep any state between calls.
// Fds: opens group fds (fanotifyInit) and receives event fds (readEvents); JS owns both and
// closes them with close(). On a malformed batch the event fds already parsed are closed
// before throwing.
#include "fanotify.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <array>
#include <vector>

#include "args.h"
#include "errno-error.h"
#include "register.h"

namespace fanrecall {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;

Napi::Value Init(const Napi::CallbackInfo& info) {
  unsigned flags = ArgUint32(info, 0, "flags");
  unsigned eventFFlags = ArgUint32(info, 1, "eventFFlags");
  int fd = fanotify_init(flags, eventFFlags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "fanotify_init");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Mark(const Napi::CallbackInfo& info) {
  int group = ArgInt(info, 0, "groupFd");
  unsigned flags = ArgUint32(info, 1, "flags");
  uint64_t mask = static_cast<uint64_t>(ArgInt64(info, 2, "mask"));
  int dirFd = ArgInt(info, 3, "dirFd");
  bool hasPath = !info[4].IsNull() && !info[4].IsUndefined();
  std::string path = hasPath ? ArgString(info, 4, "path") : std::string();
  if (fanotify_mark(group, flags, mask, dirFd, hasPath ? path.c_str() : nullptr) < 0) {
    ThrowErrno(info.Env(), errno, "fanotify_mark");
  }
  return info.Env().Undefined();
}

[[noreturn]] void Malformed(Napi::Env env, const std::vector<int>& fds, const char* why) {
  for (int fd : fds) close(fd);
  ThrowErrno(env, EPROTO, "read", why);
}

// Walks the info records after the metadata; returns the range record if present.
bool ParseInfo(const char* ev, const fanotify_event_metadata& md, FanRangeInfo* range) {
  bool found = false;
  size_t pos = md.metadata_len;
  fanotify_event_info_header hdr;
  while (pos + sizeof hdr <= md.event_len) {
    memcpy(&hdr, ev + pos, sizeof hdr);
    if (hdr.len < sizeof hdr || hdr.len > md.event_len - pos) break;
    if (hdr.info_type == FAN_EVENT_INFO_TYPE_RANGE && hdr.len >= sizeof *range) {
      memcpy(range, ev + pos, sizeof *range);
      found = true;
    } else if (hdr.info_type == FAN_EVENT_INFO_TYPE_PIDFD && hdr.len >= sizeof(fanotify_event_info_pidfd)) {
      fanotify_event_info_pidfd rec;
      memcpy(&rec, ev + pos, sizeof rec);
      if (rec.pidfd >= 0) close(rec.pidfd);
    }
    pos += hdr.len;
  }
  return found;
}

// Fields per event in the caller's Float64Array: mask, fd, pid, has range, offset, count.
constexpr size_t kEventFields = 6;

// One non-blocking read; the events go into `out` (a Float64Array of at least
// kEventFields * (kReadBufferSize / FAN_EVENT_METADATA_LEN) elements) and the count is
// returned. The JS facade builds the event objects: a literal there is much cheaper than
// property sets from C++, and every access to a watched filesystem pays for it.
Napi::Value ReadEventsInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int group = ArgInt(info, 0, "groupFd");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[1].As<Napi::Float64Array>().ElementLength() < kEventFields * (kReadBufferSize / FAN_EVENT_METADATA_LEN)) {
    Napi::TypeError::New(env, "fanotifyReadInto needs a large enough Float64Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array out = info[1].As<Napi::Float64Array>();
  // One buffer per thread, reused: a fresh zeroed 64 KiB per read showed up in the cost of
  // every event. Nothing refers to it after this call returns.
  static thread_local std::array<char, kReadBufferSize> buf;
  ssize_t n;
  do n = read(group, buf.data(), buf.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Number::New(env, 0);
    ThrowErrno(env, errno, "read");
  }
  std::vector<int> fds;
  size_t pos = 0, count = 0;
  const size_t total = static_cast<size_t>(n);
  while (total - pos >= FAN_EVENT_METADATA_LEN) {
    const char* ev = buf.data() + pos;
    fanotify_event_metadata md;
    memcpy(&md, ev, sizeof md);
    if (md.vers != FANOTIFY_METADATA_VERSION) Malformed(env, fds, "fanotify metadata version mismatch");
    if (md.event_len < FAN_EVENT_METADATA_LEN || md.event_len > total - pos || md.metadata_len < FAN_EVENT_METADATA_LEN ||
        md.metadata_len > md.event_len) {
      Malformed(env, fds, "fanotify event length out of bounds");
    }
    if (md.fd >= 0) fds.push_back(md.fd);
    FanRangeInfo range;
    bool hasRange = ParseInfo(ev, md, &range);
    size_t at = count++ * kEventFields;
    out[at] = static_cast<double>(md.mask);
    out[at + 1] = md.fd;
    out[at + 2] = md.pid;
    out[at + 3] = hasRange ? 1 : 0;
    out[at + 4] = hasRange ? static_cast<double>(range.offset) : 0;
    out[at + 5] = hasRange ? static_cast<double>(range.count) : 0;
    pos += md.event_len;
  }
  return Napi::Number::New(env, static_cast<double>(count));
}

Napi::Value Respond(const Napi::CallbackInfo& info) {
  int group = ArgInt(info, 0, "groupFd");
  fanotify_response response;
  response.fd = ArgInt(info, 1, "eventFd");
  response.response = ArgUint32(info, 2, "response");
  ssize_t n;
  do n = write(group, &response, sizeof response);
  while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(info.Env(), errno, "write");
  if (static_cast<size_t>(n) != sizeof response) ThrowErrno(info.Env(), EIO, "write", "short fanotify response write");
  return info.Env().Undefined();
}

// Writes `response` for every fd number in [from, to): answers the events a dead process of
// the group had read but not answered (only their numbers identify them). Numbers with no
// pending event (ENOENT) are skipped; the count of answered events is returned. In C because
// a JS loop pays for an exception per unused number (tens of thousands of them).
Napi::Value RespondRange(const Napi::CallbackInfo& info) {
  int group = ArgInt(info, 0, "groupFd");
  int from = ArgInt(info, 1, "from");
  int to = ArgInt(info, 2, "to");
  fanotify_response response;
  response.response = ArgUint32(info, 3, "response");
  double answered = 0;
  for (int fd = from; fd < to; fd++) {
    response.fd = fd;
    ssize_t n;
    do n = write(group, &response, sizeof response);
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof response)) answered++;
  }
  return Napi::Number::New(info.Env(), answered);
}

}  // namespace

void RegisterFanotify(Napi::Env env, Napi::Object exports, Napi::Object constants) {
  SetFunctions(env, exports,
               {{"fanotifyInit", Init}, {"fanotifyMark", Mark}, {"fanotifyReadInto", ReadEventsInto},
                {"fanotifyRespond", Respond}, {"fanotifyRespondRange", RespondRange}});
#define C FANRECALL_CONSTANT
  SetConstants(env, constants,
               {C(FAN_CLASS_PRE_CONTENT), C(FAN_CLOEXEC), C(FAN_NONBLOCK), C(FAN_UNLIMITED_QUEUE),
                C(FAN_UNLIMITED_MARKS), C(FAN_REPORT_FD_ERROR), C(FAN_REPORT_TID), C(FAN_PRE_ACCESS), C(FAN_OPEN_PERM), C(FAN_OPEN), C(FAN_CLASS_NOTIF),
                C(FAN_ACCESS_PERM), C(FAN_OPEN_EXEC_PERM), C(FAN_CLOSE_WRITE), C(FAN_MODIFY), C(FAN_Q_OVERFLOW),
                C(FAN_MARK_ADD), C(FAN_MARK_REMOVE), C(FAN_MARK_FLUSH), C(FAN_MARK_INODE), C(FAN_MARK_MOUNT),
                C(FAN_MARK_FILESYSTEM), C(FAN_MARK_EVICTABLE), C(FAN_MARK_IGNORE), C(FAN_MARK_IGNORED_MASK),
                C(FAN_MARK_IGNORED_SURV_MODIFY), C(FAN_ALLOW), C(FAN_DENY), C(FAN_NOFD), C(AT_FDCWD)});
#undef C
}

}  // namespace fanrecall
