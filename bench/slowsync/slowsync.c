/*
 * slowsync: an LD_PRELOAD shim that makes every fsync-family call cost SLOWSYNC_MS milliseconds
 * (default 5) on top of the real call, and counts them. It stands in for a network file system
 * (NFS, Lustre, GPFS: 1-30 ms per fsync) where a block-device delay (device-mapper `delay`) is
 * not available. Used by `cargo xtask bench product --slow-sync`.
 *
 * At exit it appends "<fsync calls> <seconds spent in them>\n" to the file named by
 * SLOWSYNC_REPORT, if set.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_long calls;
static atomic_long nanos;

static long delay_ns(void) {
    const char *ms = getenv("SLOWSYNC_MS");
    double v = ms ? atof(ms) : 5.0;
    return (long)(v * 1e6);
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void slow(long started) {
    long d = delay_ns();
    struct timespec t = {d / 1000000000L, d % 1000000000L};
    nanosleep(&t, NULL);
    atomic_fetch_add(&calls, 1);
    atomic_fetch_add(&nanos, now_ns() - started);
}

#define WRAP(name, params, args)                                   \
    int name params {                                              \
        static int (*real) params;                                 \
        if (!real) real = (int (*) params)dlsym(RTLD_NEXT, #name); \
        long started = now_ns();                                   \
        int r = real args;                                         \
        slow(started);                                             \
        return r;                                                  \
    }

WRAP(fsync, (int fd), (fd))
WRAP(fdatasync, (int fd), (fd))
WRAP(syncfs, (int fd), (fd))

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("SLOWSYNC_REPORT");
    if (!path || atomic_load(&calls) == 0) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%ld %.6f\n", atomic_load(&calls), atomic_load(&nanos) / 1e9);
    fclose(f);
}
