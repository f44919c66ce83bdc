// fdpass.cc: unix SOCK_SEQPACKET sockets, SO_PEERCRED, and fd passing with SCM_RIGHTS; plus
// unix SOCK_DGRAM send-to (with fds), the transport of the systemd notify protocol.
//
// Owns: socket/bind/listen/accept4/connect, sendmsg/recvmsg with one cmsg of fds,
// and getsockopt(SO_PEERCRED). All sockets are created close-on-exec and non-blocking
// (connect blocks only until connected). Sends use MSG_NOSIGNAL|MSG_DONTWAIT; receives use
// MSG_CMSG_CLOEXEC|MSG_DONTWAIT and report truncation instead of hiding it.
// Must not: frame messages, check peers against policy, unlink socket paths, or retry on EAGAIN.
// Fds: creates socket fds and installs received fds, all returned to JS, which owns and
// closes them. Sent fds are duplicated by the kernel; the caller keeps its copy.
// The only fds closed here are sockets whose setup failed before JS saw them.
#include "fdpass.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "args.h"
#include "errno-error.h"
#include "register.h"

namespace fanrecall {
namespace {

constexpr size_t kMaxSendFds = 8;
constexpr size_t kRecvFdRoom = 4;
constexpr double kMaxRecvLen = 1 << 20;

sockaddr_un UnixAddress(Napi::Env env, const std::string& path, const char* syscall) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) ThrowErrno(env, ENAMETOOLONG, syscall);
  memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// Like UnixAddress, but a leading '@' names the abstract namespace (as in $NOTIFY_SOCKET).
// Returns the address length to pass to sendto.
socklen_t DatagramAddress(Napi::Env env, const std::string& path, sockaddr_un* addr, const char* syscall) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr->sun_path) ThrowErrno(env, ENAMETOOLONG, syscall);
  memcpy(addr->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    addr->sun_path[0] = '\0';
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  }
  return sizeof *addr;
}

[[noreturn]] void CloseAndThrow(Napi::Env env, int fd, const char* syscall) {
  int err = errno;
  close(fd);
  ThrowErrno(env, err, syscall);
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un addr = UnixAddress(env, ArgString(info, 0, "path"), "bind");
  int backlog = info[1].IsUndefined() ? 16 : ArgInt(info, 1, "backlog");
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) CloseAndThrow(env, fd, "bind");
  if (listen(fd, backlog) < 0) CloseAndThrow(env, fd, "listen");
  return Napi::Number::New(env, fd);
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  int listenFd = ArgInt(info, 0, "listenFd");
  int fd;
  do fd = accept4(listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0 && errno != EAGAIN) ThrowErrno(info.Env(), errno, "accept4");
  return Napi::Number::New(info.Env(), fd < 0 ? -1 : fd);
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un addr = UnixAddress(env, ArgString(info, 0, "path"), "connect");
  // Non-blocking from the start: a peer that stops accepting (its backlog full) gives
  // EAGAIN at once instead of freezing the caller's thread (the listener's main thread).
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) CloseAndThrow(env, fd, "connect");
  return Napi::Number::New(env, fd);
}

Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(ArgInt(info, 0, "sockFd"), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    ThrowErrno(env, errno, "getsockopt");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// The fds of a JS array (at most kMaxSendFds), into `fds`; returns how many.
size_t ArgFds(const Napi::CallbackInfo& info, size_t index, int* fds) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray()) throw Napi::TypeError::New(env, "fds must be an array");
  Napi::Array fdArray = info[index].As<Napi::Array>();
  size_t nfds = fdArray.Length();
  if (nfds > kMaxSendFds) throw Napi::RangeError::New(env, "too many fds");
  for (size_t i = 0; i < nfds; i++) {
    Napi::Value v = fdArray.Get(static_cast<uint32_t>(i));
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "fds must be numbers");
    fds[i] = v.As<Napi::Number>().Int32Value();
  }
  return nfds;
}

// One sendmsg of `data` with `nfds` fds in one SCM_RIGHTS cmsg, to `addr` when given.
ssize_t SendMessage(int sock, const Bytes& data, const int* fds, size_t nfds, sockaddr_un* addr,
                    socklen_t addrLen) {
  iovec iov{data.data, data.len};
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = addr;
  msg.msg_namelen = addr == nullptr ? 0 : addrLen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxSendFds)];
  memset(control, 0, sizeof control);
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

// sendWithFds(sockFd, data, fds[]): true when sent, false on EAGAIN.
Napi::Value SendWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgInt(info, 0, "sockFd");
  Bytes data = ArgBytes(info, 1, "data");
  int fds[kMaxSendFds];
  size_t nfds = ArgFds(info, 2, fds);
  // A zero-length message cannot be told apart from EOF by the receiver.
  if (data.len == 0) ThrowErrno(env, EINVAL, "sendmsg", "empty message");
  ssize_t n = SendMessage(sock, data, fds, nfds, nullptr, 0);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "sendmsg");
  }
  if (static_cast<size_t>(n) != data.len) ThrowErrno(env, EMSGSIZE, "sendmsg", "short send");
  return Napi::Boolean::New(env, true);
}

// datagramSendTo(path, data, fds[]): one datagram on a fresh SOCK_DGRAM socket, closed
// before returning. Throws on any failure, EAGAIN included (the receiver is not reading).
Napi::Value DatagramSendTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un addr;
  socklen_t addrLen = DatagramAddress(env, ArgString(info, 0, "path"), &addr, "sendmsg");
  Bytes data = ArgBytes(info, 1, "data");
  int fds[kMaxSendFds];
  size_t nfds = ArgFds(info, 2, fds);
  if (data.len == 0) ThrowErrno(env, EINVAL, "sendmsg", "empty message");
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) ThrowErrno(env, errno, "socket");
  ssize_t n = SendMessage(sock, data, fds, nfds, &addr, addrLen);
  if (n < 0) CloseAndThrow(env, sock, "sendmsg");
  close(sock);
  if (static_cast<size_t>(n) != data.len) ThrowErrno(env, EMSGSIZE, "sendmsg", "short send");
  return env.Undefined();
}

Napi::Value RecvWithFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgInt(info, 0, "sockFd");
  double maxLen = ArgInteger(info, 1, "maxLen");
  if (maxLen < 1 || maxLen > kMaxRecvLen) throw Napi::RangeError::New(env, "maxLen must be 1..1048576");
  std::vector<uint8_t> buf(static_cast<size_t>(maxLen));
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kRecvFdRoom)];
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    ThrowErrno(env, errno, "recvmsg");
  }
  Napi::Array fds = Napi::Array::New(env);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.Set(fds.Length(), fd);
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  out.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0));
  out.Set("eof", Napi::Boolean::New(env, n == 0));
  return out;
}

}  // namespace

void RegisterFdpass(Napi::Env env, Napi::Object exports) {
  SetFunctions(env, exports,
               {{"seqpacketListen", Listen}, {"seqpacketAccept", Accept}, {"seqpacketConnect", Connect},
                {"peerCred", PeerCred}, {"sendWithFds", SendWithFds}, {"recvWithFd", RecvWithFd},
                {"datagramSendTo", DatagramSendTo}});
}

}  // namespace fanrecall
