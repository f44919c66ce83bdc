// fileops.cc: file operations on fds (event fds, fds received over SCM_RIGHTS, admin fds).
//
// Owns: fstat, f{get,set,remove}xattr, pread/pwrite, fsync/fdatasync, fallocate, lseek
// SEEK_DATA/SEEK_HOLE, futimens, close, dup, openat (path-based, for the admin/CLI side:
// never use it on a watched filesystem from the listener) and openBeneath (openat2 confined
// beneath a directory fd, O_PATH only: no content access and no fanotify event).
// Must not: interpret xattrs or stat results, buffer data, or decide anything.
// Fds: openPath and dup create fds (always O_CLOEXEC) that JS owns; close() releases one.
// All other calls only borrow the fd they are given.
#include "fileops.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vector>

#include "args.h"
#include "errno-error.h"
#include "register.h"

namespace fanrecall {
namespace {

constexpr size_t kXattrMax = 64 * 1024;  // XATTR_SIZE_MAX
constexpr int64_t kNsPerSec = 1000000000;


// fstat into two typed arrays the caller owns (numbers: dev ino mode nlink uid gid size
// blocks blksize; times in ns: atime mtime ctime). The JS facade builds the object: one
// object literal there is several times cheaper than twelve property sets from C++, and
// every event pays for one fstat.
Napi::Value FstatInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct stat st;
  if (fstat(ArgInt(info, 0, "fd"), &st) < 0) ThrowErrno(env, errno, "fstat");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[1].As<Napi::Float64Array>().ElementLength() < 9 || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array ||
      info[2].As<Napi::BigInt64Array>().ElementLength() < 3) {
    Napi::TypeError::New(env, "fstatInto needs a Float64Array(9) and a BigInt64Array(3)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array nums = info[1].As<Napi::Float64Array>();
  Napi::BigInt64Array times = info[2].As<Napi::BigInt64Array>();
  const double values[9] = {static_cast<double>(st.st_dev),    static_cast<double>(st.st_ino),
                            static_cast<double>(st.st_mode),   static_cast<double>(st.st_nlink),
                            static_cast<double>(st.st_uid),    static_cast<double>(st.st_gid),
                            static_cast<double>(st.st_size),   static_cast<double>(st.st_blocks),
                            static_cast<double>(st.st_blksize)};
  for (size_t i = 0; i < 9; i++) nums[i] = values[i];
  const timespec* ts[3] = {&st.st_atim, &st.st_mtim, &st.st_ctim};
  for (size_t i = 0; i < 3; i++) times[i] = static_cast<int64_t>(ts[i]->tv_sec) * kNsPerSec + ts[i]->tv_nsec;
  return env.Undefined();
}

// One xattr read: null for ENODATA, a Buffer of the value otherwise. A small stack buffer
// first (stub states are far below 4 KiB, and most files have no such xattr at all); only
// a larger value pays for the 64 KiB buffer.
template <typename Read>
Napi::Value XattrValue(Napi::Env env, const char* syscall, Read read) {
  char small[4096];
  ssize_t n = read(small, sizeof small);
  if (n >= 0) return Napi::Buffer<char>::Copy(env, small, static_cast<size_t>(n));
  if (errno == ENODATA) return env.Null();
  if (errno != ERANGE) ThrowErrno(env, errno, syscall);
  std::vector<char> buf(kXattrMax);
  n = read(buf.data(), buf.size());
  if (n < 0) {
    if (errno == ENODATA) return env.Null();
    ThrowErrno(env, errno, syscall);
  }
  return Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n));
}

Napi::Value Fgetxattr(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  std::string name = ArgString(info, 1, "name");
  return XattrValue(info.Env(), "fgetxattr", [&](char* b, size_t len) { return fgetxattr(fd, name.c_str(), b, len); });
}

// By path, without following a final symlink and without opening the file: status reads
// stub state this way so that looking at a stub never raises an open or access event.
// By path, following symlinks: for /proc/self/fd/N of an O_PATH fd, where fgetxattr gives EBADF.
Napi::Value Getxattr(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  return XattrValue(info.Env(), "getxattr",
                    [&](char* b, size_t len) { return getxattr(path.c_str(), name.c_str(), b, len); });
}

// openat2(dirfd, path, flags, resolve) that never follows a symlink, at the end of the path
// or on the way (ELOOP), nor a magic link; the new fd is O_CLOEXEC and JS owns it.
Napi::Value Openat2NoSymlinks(Napi::Env env, int dirfd, const std::string& path, uint64_t flags, uint64_t resolve,
                              uint64_t mode = 0) {
  struct open_how how = {};
  how.flags = flags | O_NOFOLLOW | O_CLOEXEC;
  how.mode = mode;
  how.resolve = resolve | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(env, errno, "openat2");
  return Napi::Number::New(env, static_cast<double>(fd));
}

// O_PATH beneath dirfd: a relative path that cannot leave dirfd's tree (no "..", absolute
// path or mount crossing on the way: EXDEV otherwise). An O_PATH fd gives no access to
// content and its open raises no fanotify event.
Napi::Value OpenBeneath(const Napi::CallbackInfo& info) {
  int dirfd = ArgInt(info, 0, "dirfd");
  std::string path = ArgString(info, 1, "path");
  return Openat2NoSymlinks(info.Env(), dirfd, path, O_PATH, RESOLVE_BENEATH | RESOLVE_NO_XDEV);
}

// A new regular file beneath dirfd, write-only, with `mode`: O_CREAT|O_EXCL, so an existing
// file (or a symlink planted there) is never opened (EEXIST), with the same confinement as
// OpenBeneath.
Napi::Value CreateBeneath(const Napi::CallbackInfo& info) {
  int dirfd = ArgInt(info, 0, "dirfd");
  std::string path = ArgString(info, 1, "path");
  uint64_t mode = static_cast<uint64_t>(ArgInt(info, 2, "mode")) & 07777;
  return Openat2NoSymlinks(info.Env(), dirfd, path, O_WRONLY | O_CREAT | O_EXCL, RESOLVE_BENEATH | RESOLVE_NO_XDEV,
                           mode);
}

// mkdirat(dirfd, name, mode) for one path component (no "/"): nothing is resolved but the
// name itself in the directory dirfd holds, and an existing name is EEXIST.
Napi::Value MkdirAt(const Napi::CallbackInfo& info) {
  int dirfd = ArgInt(info, 0, "dirfd");
  std::string name = ArgString(info, 1, "name");
  mode_t mode = static_cast<mode_t>(ArgInt(info, 2, "mode")) & 07777;
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    ThrowErrno(info.Env(), EINVAL, "mkdirat");
    return info.Env().Undefined();
  }
  if (mkdirat(dirfd, name.c_str(), mode) < 0) ThrowErrno(info.Env(), errno, "mkdirat");
  return info.Env().Undefined();
}

// From AT_FDCWD with the caller's flags: a root command given a path must not be redirected
// by a directory someone swapped for a symlink.
Napi::Value OpenNoSymlinks(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  uint64_t flags = static_cast<uint64_t>(ArgInt(info, 1, "flags"));
  return Openat2NoSymlinks(info.Env(), AT_FDCWD, path, flags, 0);
}

// prctl(PR_SET_NO_NEW_PRIVS): this process and its children can never gain privileges.
Napi::Value SetNoNewPrivs(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) ThrowErrno(info.Env(), errno, "prctl");
  return info.Env().Undefined();
}

Napi::Value Fsetxattr(const Napi::CallbackInfo& info) {
  Bytes value = ArgBytes(info, 2, "value");
  int flags = ArgInt(info, 3, "flags");
  if (fsetxattr(ArgInt(info, 0, "fd"), ArgString(info, 1, "name").c_str(), value.data, value.len, flags) < 0) {
    ThrowErrno(info.Env(), errno, "fsetxattr");
  }
  return info.Env().Undefined();
}

Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  int mode = ArgInt(info, 1, "mode");
  if (fallocate(fd, mode, ArgInt64(info, 2, "offset"), ArgInt64(info, 3, "length")) < 0) {
    ThrowErrno(info.Env(), errno, "fallocate");
  }
  return info.Env().Undefined();
}

// lseek(fd, offset, whence) for SEEK_DATA/SEEK_HOLE; -1 on ENXIO (no data/hole at or after offset).
Napi::Value Seek(const Napi::CallbackInfo& info) {
  off_t r = lseek(ArgInt(info, 0, "fd"), ArgInt64(info, 1, "offset"), ArgInt(info, 2, "whence"));
  if (r < 0) {
    if (errno == ENXIO) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), errno, "lseek");
  }
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

timespec ArgTimespec(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsBigInt()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a bigint");
  bool lossless = false;
  int64_t ns = info[i].As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(info.Env(), std::string(what) + " out of range");
  int64_t sec = ns / kNsPerSec, rem = ns % kNsPerSec;
  if (rem < 0) {
    rem += kNsPerSec;
    sec -= 1;
  }
  return timespec{static_cast<time_t>(sec), static_cast<long>(rem)};
}

Napi::Value Futimens(const Napi::CallbackInfo& info) {
  timespec times[2] = {ArgTimespec(info, 1, "atimeNs"), ArgTimespec(info, 2, "mtimeNs")};
  if (futimens(ArgInt(info, 0, "fd"), times) < 0) ThrowErrno(info.Env(), errno, "futimens");
  return info.Env().Undefined();
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  // On Linux the fd is released even when close() reports EINTR, so never retry.
  if (close(ArgInt(info, 0, "fd")) < 0 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

Napi::Value OpenPath(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int flags = ArgInt(info, 1, "flags") | O_CLOEXEC;
  mode_t mode = info[2].IsUndefined() ? 0600 : static_cast<mode_t>(ArgUint32(info, 2, "mode"));
  int fd;
  do fd = openat(AT_FDCWD, path.c_str(), flags, mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(info.Env(), errno, "openat");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = fcntl(ArgInt(info, 0, "fd"), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "dup");
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void RegisterFileops(Napi::Env env, Napi::Object exports, Napi::Object constants) {
  SetFunctions(env, exports,
               {{"fstatInto", FstatInto}, {"fgetxattr", Fgetxattr}, {"getxattr", Getxattr}, {"openBeneath", OpenBeneath}, {"openNoSymlinks", OpenNoSymlinks}, {"createBeneath", CreateBeneath}, {"mkdirAt", MkdirAt}, {"setNoNewPrivs", SetNoNewPrivs}, {"fsetxattr", Fsetxattr},
                {"fallocate", Fallocate}, {"seek", Seek}, {"futimens", Futimens}, {"close", Close},
                {"openPath", OpenPath}, {"dup", Dup}});
#define C FANRECALL_CONSTANT
  SetConstants(env, constants,
               {C(O_RDONLY), C(O_WRONLY), C(O_RDWR), C(O_CREAT), C(O_EXCL), C(O_TRUNC), C(O_LARGEFILE),
                C(O_CLOEXEC), C(FALLOC_FL_KEEP_SIZE), C(FALLOC_FL_PUNCH_HOLE), C(XATTR_CREATE), C(XATTR_REPLACE),
                C(SEEK_DATA), C(SEEK_HOLE), C(O_DIRECTORY), C(O_NOFOLLOW), C(O_NOATIME), C(O_PATH), C(O_NONBLOCK)});
#undef C
}

}  // namespace fanrecall
