// libsystemd's daemon API. sd_notifyf is variadic, so messages are formatted in Swift and sent with sd_notify.
#ifndef LANYARD_CSYSTEMD_SHIM_H
#define LANYARD_CSYSTEMD_SHIM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <malloc.h>

// The host C library beside systemd's: glibc's malloc_trim, to give freed heap back after startup bursts.
static inline int lanyard_malloc_trim(void) { return malloc_trim(0); }

static inline int lanyard_SD_LISTEN_FDS_START(void) { return SD_LISTEN_FDS_START; }

// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC.
static inline unsigned long long lanyard_monotonic_usec(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000ULL;
}

// Sends one structured journal entry made of `count` "FIELD=value" strings (sd_journal_send is variadic).
static inline int lanyard_journal_send(const char *const *fields, int count) {
    struct iovec vectors[64];
    if (count > 64) count = 64;
    for (int index = 0; index < count; index++) {
        vectors[index].iov_base = (void *)fields[index];
        vectors[index].iov_len = strlen(fields[index]);
    }
    return sd_journal_sendv(vectors, count);
}

// Whether standard error is the journal's stream: JOURNAL_STREAM holds "device:inode" of it.
static inline int lanyard_stderr_is_journal(void) {
    const char *stream = getenv("JOURNAL_STREAM");
    if (stream == NULL) return 0;
    unsigned long long device = 0, inode = 0;
    if (sscanf(stream, "%llu:%llu", &device, &inode) != 2) return 0;
    struct stat status;
    if (fstat(2, &status) != 0) return 0;
    return (unsigned long long)status.st_dev == device && (unsigned long long)status.st_ino == inode;
}

// Asks systemd on the system bus (DBUS_SYSTEM_BUS_ADDRESS, else the standard socket) to reload `unit`:
// org.freedesktop.systemd1.Manager.ReloadUnit(unit, "replace"). Returns 0, or a negative errno with the reason in
// `message` (sd_bus_call_method is variadic, so the call is made here).
static inline int lanyard_systemd_reload_unit(const char *unit, char *message, size_t size) {
    sd_bus *bus = NULL;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    int result = sd_bus_open_system(&bus);
    if (result < 0) {
        snprintf(message, size, "cannot connect to the system bus: %s", strerror(-result));
        return result;
    }
    result = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                "org.freedesktop.systemd1.Manager", "ReloadUnit", &error, &reply, "ss", unit,
                                "replace");
    if (result < 0) {
        snprintf(message, size, "%s", error.message ? error.message : strerror(-result));
    }
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    sd_bus_flush_close_unref(bus);
    return result;
}

#endif
