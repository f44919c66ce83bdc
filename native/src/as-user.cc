// as-user.cc: resolving a path as another user would, so the kernel (modes, ACLs, every
// directory's search bit) decides what the recall service's uid may reach through the mesh.
//
// Owns: openBeneathAs, which runs its syscalls in a short-lived std::thread whose own
// credentials are set by raw syscalls (setgroups, setfsgid, setfsuid act on the calling
// thread only; glibc's wrappers would change every thread of the process). While fsuid is not
// 0 the kernel drops that thread's file capabilities (DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER,
// ...), so each lookup and access check is the user's. The thread is joined before the call
// returns: no thread outlives a call, and no other thread's credentials ever change. It is a
// credential sandbox, not a worker: the only exception to native/'s "no threads" rule.
// Also peerGroups (SO_PEERGROUPS): the supplementary groups a unix-socket peer had.
// Must not: decide whose credentials to use or what a refusal means; that is the listener's.
// Fds: openBeneathAs returns one new O_PATH|O_CLOEXEC fd that JS owns and closes.
#include "as-user.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "args.h"
#include "errno-error.h"
#include "register.h"

#ifndef AT_EACCESS
#define AT_EACCESS 0x200
#endif

namespace fanrecall {
namespace {

constexpr size_t kMaxGroups = 65536;  // NGROUPS_MAX

struct AsUser {
  int dirFd;
  std::string rootPath;  // the directory dirFd is, checked for search (X_OK) from '/'
  std::string rel;       // resolved beneath dirFd
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
  int fd = -1;
  int err = 0;
  const char* syscall = "";
};

void Fail(AsUser& a, const char* call) {
  a.err = errno;
  a.syscall = call;
}

// Runs on the sandbox thread. Every failure leaves err/syscall set and fd -1.
void ResolveAsUser(AsUser& a) {
  if (syscall(SYS_setgroups, a.groups.size(), a.groups.data()) < 0) return Fail(a, "setgroups");
  syscall(SYS_setfsgid, a.gid);
  syscall(SYS_setfsuid, a.uid);
  // setfsuid/setfsgid report no error: read the values back (an invalid id changes nothing
  // and returns the current one). Without CAP_SETUID/CAP_SETGID they stay root's: refuse.
  if (static_cast<gid_t>(syscall(SYS_setfsgid, static_cast<gid_t>(-1))) != a.gid ||
      static_cast<uid_t>(syscall(SYS_setfsuid, static_cast<uid_t>(-1))) != a.uid) {
    errno = EPERM;
    return Fail(a, "setfsuid");
  }
  // Every directory from '/' to the watch root must be searchable by the user.
  if (syscall(SYS_faccessat2, AT_FDCWD, a.rootPath.c_str(), X_OK, AT_EACCESS) < 0) return Fail(a, "faccessat2");
  struct open_how how = {};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd;
  do fd = syscall(SYS_openat2, a.dirFd, a.rel.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return Fail(a, "openat2");
  // An O_PATH open checks only the search bits on the way; reading needs R_OK on the file.
  if (syscall(SYS_faccessat2, static_cast<int>(fd), "", R_OK, AT_EMPTY_PATH | AT_EACCESS) < 0) {
    Fail(a, "faccessat2");
    close(static_cast<int>(fd));
    return;
  }
  a.fd = static_cast<int>(fd);
}

// openBeneathAs(dirFd, rootPath, rel, uid, gid, groups): an O_PATH fd of `rel` beneath
// dirFd (no "..", symlink, magic link or mount crossing), resolved and checked readable with
// the given credentials; throws the errno the user would have got (EACCES, ENOENT, ELOOP...).
Napi::Value OpenBeneathAs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AsUser a{ArgInt(info, 0, "dirFd"), ArgString(info, 1, "rootPath"), ArgString(info, 2, "path"),
           ArgRanged<uid_t>(info, 3, "uid"), ArgRanged<gid_t>(info, 4, "gid"), {}};
  if (!info[5].IsArray()) throw Napi::TypeError::New(env, "groups must be an array");
  Napi::Array groups = info[5].As<Napi::Array>();
  if (groups.Length() > kMaxGroups) throw Napi::RangeError::New(env, "too many groups");
  for (uint32_t i = 0; i < groups.Length(); i++) {
    Napi::Value g = groups.Get(i);
    if (!g.IsNumber()) throw Napi::TypeError::New(env, "groups must be numbers");
    double d = g.As<Napi::Number>().DoubleValue();
    if (d < 0 || d >= 4294967295.0 || d != static_cast<double>(static_cast<gid_t>(d)))
      throw Napi::RangeError::New(env, "group out of range");
    a.groups.push_back(static_cast<gid_t>(d));
  }
  // Never root (fsuid 0 keeps every capability), never the "no change" id.
  if (a.uid == 0 || a.uid == static_cast<uid_t>(-1) || a.gid == static_cast<gid_t>(-1)) {
    throw Napi::RangeError::New(env, "uid/gid must be an ordinary, non-root id");
  }
  // The thread starts with every signal blocked, so no process signal lands on it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    std::thread t(ResolveAsUser, std::ref(a));
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    t.join();
  } catch (const std::system_error& e) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    ThrowErrno(env, e.code().value() > 0 ? e.code().value() : EAGAIN, "pthread_create");
  }
  if (a.fd < 0) ThrowErrno(env, a.err, a.syscall);
  return Napi::Number::New(env, a.fd);
}

// getsockopt(SO_PEERGROUPS): the peer's supplementary groups when it connected (or listened).
Napi::Value PeerGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgInt(info, 0, "sockFd");
  std::vector<gid_t> groups(64);
  for (;;) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || len / sizeof(gid_t) > kMaxGroups) ThrowErrno(env, errno, "getsockopt");
    groups.resize(len / sizeof(gid_t));
  }
  Napi::Array out = Napi::Array::New(env, groups.size());
  for (uint32_t i = 0; i < groups.size(); i++) out.Set(i, Napi::Number::New(env, groups[i]));
  return out;
}

}  // namespace

void RegisterAsUser(Napi::Env env, Napi::Object exports) {
  SetFunctions(env, exports, {{"openBeneathAs", OpenBeneathAs}, {"peerGroups", PeerGroups}});
}

}  // namespace fanrecall
