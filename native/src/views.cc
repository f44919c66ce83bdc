// views.cc: the listener's own read-write view of a watched filesystem, and leases.
//
// Owns: open_tree(OPEN_TREE_CLONE) + mount_setattr (a detached, private, read-write clone of
// the mount a directory is on: no other process can reach it, and it stays writable when the
// directory was reached through a read-only mount), name_to_handle_at + open_by_handle_at
// (reopening the inode behind any fd, even an O_PATH or read-only event fd, through such a
// view) and fcntl(F_SETLEASE).
// Must not: decide which files to open or what to do with them; that is the listener's.
// Fds: openTreeClone and reopenByHandle return new O_CLOEXEC fds that JS owns and closes.
#include "views.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "args.h"
#include "errno-error.h"
#include "register.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif

namespace fanrecall {
namespace {

constexpr unsigned kMaxHandleBytes = 128;  // MAX_HANDLE_SZ

// A detached clone of the mount `path` is on, rooted at `path`, made read-write (the clone
// is this process's alone, so clearing its read-only flag changes no one else's view).
// Returns an O_RDONLY|O_DIRECTORY fd of its root: open_by_handle_at and fanotify_mark need
// a real fd, not the O_PATH fd open_tree returns.
Napi::Value OpenTreeClone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | O_CLOEXEC));
  if (tree < 0) ThrowErrno(env, errno, "open_tree");
  struct mount_attr attr = {};
  attr.attr_clr = MOUNT_ATTR_RDONLY;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    int e = errno;
    close(tree);
    ThrowErrno(env, e, "mount_setattr");
  }
  int root;
  do root = openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (root < 0 && errno == EINTR);
  int e = errno;
  close(tree);
  if (root < 0) ThrowErrno(env, e, "openat");
  return Napi::Number::New(env, root);
}

// The inode behind `fd` (any kind of fd), opened again with `flags` through the mount of
// `mountFd`. The handle never leaves this call.
Napi::Value ReopenByHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  int mountFd = ArgInt(info, 1, "mountFd");
  int flags = ArgInt(info, 2, "flags") | O_CLOEXEC | O_NOFOLLOW;
  struct {
    file_handle h;
    unsigned char bytes[kMaxHandleBytes];
  } fh;
  fh.h.handle_bytes = kMaxHandleBytes;
  int mountId;
  if (name_to_handle_at(fd, "", &fh.h, &mountId, AT_EMPTY_PATH) < 0) ThrowErrno(env, errno, "name_to_handle_at");
  int out;
  do out = open_by_handle_at(mountFd, &fh.h, flags);
  while (out < 0 && errno == EINTR);
  if (out < 0) ThrowErrno(env, errno, "open_by_handle_at");
  return Napi::Number::New(env, out);
}

// fcntl(fd, F_SETLEASE, type): F_WRLCK succeeds only while no other open file of the inode
// exists (EAGAIN otherwise); later opens by others wait until F_UNLCK.
Napi::Value SetLease(const Napi::CallbackInfo& info) {
  if (fcntl(ArgInt(info, 0, "fd"), F_SETLEASE, ArgInt(info, 1, "type")) < 0) {
    ThrowErrno(info.Env(), errno, "fcntl");
  }
  return info.Env().Undefined();
}

}  // namespace

void RegisterViews(Napi::Env env, Napi::Object exports, Napi::Object constants) {
  SetFunctions(env, exports,
               {{"openTreeClone", OpenTreeClone}, {"reopenByHandle", ReopenByHandle}, {"setLease", SetLease}});
#define C FANRECALL_CONSTANT
  SetConstants(env, constants, {C(F_RDLCK), C(F_WRLCK), C(F_UNLCK)});
#undef C
}

}  // namespace fanrecall
