/* An LD_PRELOAD shim that moves a process's realtime clock CLOCK_AHEAD_MS ahead (gettimeofday and
 * clock_gettime(CLOCK_REALTIME)): a Redis master whose clock disagrees with the others'. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
static long long skew_us(void) { const char *s = getenv("CLOCK_AHEAD_MS"); return s ? atoll(s) * 1000LL : 0; }
int gettimeofday(struct timeval *tv, void *tz) {
  static int (*real)(struct timeval *, void *) = 0;
  if (!real) real = dlsym(RTLD_NEXT, "gettimeofday");
  int r = real(tv, tz);
  long long us = (long long)tv->tv_sec * 1000000LL + tv->tv_usec + skew_us();
  tv->tv_sec = us / 1000000LL; tv->tv_usec = us % 1000000LL;
  return r;
}
int clock_gettime(clockid_t id, struct timespec *ts) {
  static int (*real)(clockid_t, struct timespec *) = 0;
  if (!real) real = dlsym(RTLD_NEXT, "clock_gettime");
  int r = real(id, ts);
  if (id == CLOCK_REALTIME) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + skew_us() * 1000LL;
    ts->tv_sec = ns / 1000000000LL; ts->tv_nsec = ns % 1000000000LL;
  }
  return r;
}
