// libsystemd's daemon API. sd_notifyf is variadic, so messages are formatted in Swift and sent with sd_notify.
#ifndef LANYARD_CSYSTEMD_SHIM_H
#define LANYARD_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <time.h>

static inline int lanyard_SD_LISTEN_FDS_START(void) { return SD_LISTEN_FDS_START; }

// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC.
static inline unsigned long long lanyard_monotonic_usec(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000ULL;
}

#endif
