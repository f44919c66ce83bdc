/*
 * min-listener.c: the kernel floor for fanrecall's per-event cost. A minimal fanotify
 * pre-content listener: one FAN_CLASS_PRE_CONTENT group, a filesystem mark for
 * FAN_PRE_ACCESS on the filesystem holding DIR, and FAN_ALLOW for every event at once
 * (no stat, no xattr), so each event costs only what the kernel and one read/write/close
 * round trip cost. With --ignore it also puts the ignore mark fanrecall puts on a file that
 * is not a stub (evictable, surviving modification) on every file it answers: then it holds
 * the same marks as fanrecall, and a warm pass costs only what those marks cost the kernel.
 *
 * Owns: the group fd and every event fd (closed right after the answer).
 * Prints "ready" once the mark is in place, and "events N" on SIGTERM/SIGINT, then exits.
 * Built by bench/measure.ts with `cc -O2` at bench time; root only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_MARK_FILESYSTEM
#define FAN_MARK_FILESYSTEM 0x00000100
#endif
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

int main(int argc, char **argv) {
  int ignore = argc == 3 && strcmp(argv[1], "--ignore") == 0;
  if (argc != 2 + ignore) {
    fprintf(stderr, "usage: min-listener [--ignore] DIR\n");
    return 2;
  }
  const char *dir = argv[argc - 1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: read() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int fan = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE);
  if (fan < 0) {
    perror("fanotify_init");
    return 1;
  }
  if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_PRE_ACCESS, AT_FDCWD, dir) < 0) {
    perror("fanotify_mark");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  static char buf[64 * 1024] __attribute__((aligned(8)));
  unsigned long long events = 0;
  while (!stop_requested) {
    ssize_t n = read(fan, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("read");
      return 1;
    }
    for (struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf; FAN_EVENT_OK(m, n);
         m = FAN_EVENT_NEXT(m, n)) {
      if (m->fd < 0) continue;
      struct fanotify_response r = {.fd = m->fd, .response = FAN_ALLOW};
      if (write(fan, &r, sizeof r) != sizeof r) perror("write response");
      if (ignore &&
          fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_EVICTABLE,
                        FAN_PRE_ACCESS, m->fd, NULL) < 0)
        perror("ignore mark");
      close(m->fd);
      events++;
    }
  }
  printf("events %llu\n", events);
  fflush(stdout);
  close(fan);
  return 0;
}
