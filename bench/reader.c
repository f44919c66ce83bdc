/*
 * reader.c: the bench's timed reader, so that no Node start-up or event-loop cost lands in a
 * figure. Every mode prints one JSON object on stdout; times are CLOCK_MONOTONIC ns (the
 * clock of Node's process.hrtime.bigint(), so `--at` and start/end compare across processes).
 *
 *   seq PATH BS [--hash] [--at NS]   open, read(BS) to EOF, close; time to the first read's
 *                                    return, total time, an optional 64-bit content hash;
 *                                    --at: open first, then wait until NS to start reading
 *   pread PATH OFF LEN               open, one pread(LEN at OFF), close; hash of the bytes read
 *   files PREFIX N                   open+read to EOF+close of PREFIX000000 .. PREFIX(N-1)
 *   lat PATH N                       N x pread(1 byte at 0): median, p99 and mean per call
 *
 * Owns: only the fds it opens. Built by bench/measure.ts with `cc -O2` at bench time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *path) {
  fprintf(stderr, "reader: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static void sleep_until(uint64_t at) {
  for (uint64_t t = now_ns(); t < at; t = now_ns()) {
    uint64_t left = at - t;
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000ull), .tv_nsec = (long)(left % 1000000000ull)};
    nanosleep(&ts, NULL);
  }
}

/* A cheap 64-bit hash over 8-byte words (tail bytes folded in one by one); not cryptographic. */
static uint64_t mix(uint64_t h, const unsigned char *p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static int mode_seq(int argc, char **argv) {
  const char *path = argv[2];
  size_t bs = strtoull(argv[3], NULL, 10);
  int hash = 0;
  uint64_t at = 0;
  for (int i = 4; i < argc; i++) {
    if (strcmp(argv[i], "--hash") == 0) hash = 1;
    else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc) at = strtoull(argv[++i], NULL, 10);
  }
  unsigned char *buf = aligned_alloc(4096, (bs + 4095) / 4096 * 4096);
  if (buf == NULL) die("alloc", path);
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open", path);
  if (at) sleep_until(at);
  uint64_t start = now_ns(), first = 0, bytes = 0, h = 0xcbf29ce484222325ull;
  for (;;) {
    ssize_t n = read(fd, buf, bs);
    if (n < 0) die("read", path);
    if (first == 0) first = now_ns();
    if (n == 0) break;
    if (hash) h = mix(h, buf, (size_t)n);
    bytes += (uint64_t)n;
  }
  close(fd);
  uint64_t end = now_ns();
  printf("{\"bytes\":%llu,\"firstNs\":%llu,\"totalNs\":%llu,\"startNs\":%llu,\"endNs\":%llu,\"hash\":\"%016llx\"}\n",
         (unsigned long long)bytes, (unsigned long long)(first - start), (unsigned long long)(end - start),
         (unsigned long long)start, (unsigned long long)end, (unsigned long long)(hash ? h : 0));
  return 0;
}

static int mode_pread(char **argv) {
  const char *path = argv[2];
  off_t off = (off_t)strtoull(argv[3], NULL, 10);
  size_t len = strtoull(argv[4], NULL, 10);
  unsigned char *buf = aligned_alloc(4096, (len + 4095) / 4096 * 4096);
  if (buf == NULL) die("alloc", path);
  uint64_t start = now_ns();
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open", path);
  ssize_t n = pread(fd, buf, len, off);
  if (n < 0) die("pread", path);
  close(fd);
  uint64_t end = now_ns();
  uint64_t h = mix(0xcbf29ce484222325ull, buf, (size_t)n);
  printf("{\"bytes\":%lld,\"ns\":%llu,\"hash\":\"%016llx\"}\n", (long long)n, (unsigned long long)(end - start),
         (unsigned long long)h);
  return 0;
}

static int mode_files(char **argv) {
  const char *prefix = argv[2];
  long n = strtol(argv[3], NULL, 10);
  static unsigned char buf[64 * 1024];
  char path[4096];
  uint64_t bytes = 0, start = now_ns();
  for (long i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s%06ld", prefix, i);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open", path);
    for (;;) {
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0) die("read", path);
      if (r == 0) break;
      bytes += (uint64_t)r;
    }
    close(fd);
  }
  uint64_t end = now_ns();
  printf("{\"files\":%ld,\"bytes\":%llu,\"ns\":%llu}\n", n, (unsigned long long)bytes,
         (unsigned long long)(end - start));
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int mode_lat(char **argv) {
  const char *path = argv[2];
  long n = strtol(argv[3], NULL, 10);
  uint64_t *t = calloc((size_t)n, sizeof *t);
  unsigned char c;
  if (t == NULL || n <= 0) die("alloc", path);
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open", path);
  uint64_t sum = 0;
  for (long i = 0; i < n; i++) {
    uint64_t s = now_ns();
    if (pread(fd, &c, 1, 0) < 0) die("pread", path);
    t[i] = now_ns() - s;
    sum += t[i];
  }
  close(fd);
  qsort(t, (size_t)n, sizeof *t, cmp_u64);
  printf("{\"n\":%ld,\"medianNs\":%llu,\"p99Ns\":%llu,\"meanNs\":%llu}\n", n, (unsigned long long)t[n / 2],
         (unsigned long long)t[(n * 99) / 100], (unsigned long long)(sum / (uint64_t)n));
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "seq") == 0) return mode_seq(argc, argv);
  if (argc == 5 && strcmp(argv[1], "pread") == 0) return mode_pread(argv);
  if (argc == 4 && strcmp(argv[1], "files") == 0) return mode_files(argv);
  if (argc == 4 && strcmp(argv[1], "lat") == 0) return mode_lat(argv);
  fprintf(stderr, "usage: reader seq PATH BS [--hash] [--at NS] | pread PATH OFF LEN | files PREFIX N | lat PATH N\n");
  return 2;
}
