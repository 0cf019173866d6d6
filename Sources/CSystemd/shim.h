// libsystemd's daemon API. sd_notifyf is variadic, so messages are formatted in Swift and sent with sd_notify.
#ifndef LANYARD_CSYSTEMD_SHIM_H
#define LANYARD_CSYSTEMD_SHIM_H

#include <errno.h>
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

// What systemd's manager says of one process: its unit's Id, FragmentPath and Slice.
struct lanyard_systemd_unit {
    char id[256];
    char fragment_path[1024];
    char slice[256];
};

// Connects to the system bus: `address` when given ("unix:path=..."), else DBUS_SYSTEM_BUS_ADDRESS or the standard
// socket. Method calls time out after `timeout_usec`.
static inline int lanyard_systemd_open_bus(const char *address, unsigned long long timeout_usec, sd_bus **out) {
    sd_bus *bus = NULL;
    int result;
    if (address == NULL) {
        result = sd_bus_open_system(&bus);
    } else {
        result = sd_bus_new(&bus);
        if (result >= 0) result = sd_bus_set_address(bus, address);
        if (result >= 0) result = sd_bus_set_bus_client(bus, 1);
        if (result >= 0) result = sd_bus_start(bus);
    }
    if (result >= 0) result = sd_bus_set_method_call_timeout(bus, timeout_usec);
    if (result < 0) {
        sd_bus_flush_close_unref(bus);
        return result;
    }
    *out = bus;
    return 0;
}

// A string property of a systemd unit object; "" when the unit has no such interface or property.
static inline int lanyard_systemd_unit_property(sd_bus *bus, const char *path, const char *interface,
                                                const char *property, char *out, size_t size, char *message,
                                                size_t message_size) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char *value = NULL;
    int result = sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, interface, property, &error,
                                            &value);
    if (result < 0) {
        if (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_PROPERTY) ||
            sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_INTERFACE)) {
            out[0] = 0;
            result = 0;
        } else {
            snprintf(message, message_size, "%s.%s: %s", interface, property,
                     error.message ? error.message : strerror(-result));
        }
    } else {
        snprintf(out, size, "%s", value);
        if (strlen(value) >= size) {
            snprintf(message, message_size, "%s is longer than %zu bytes", property, size - 1);
            result = -EOVERFLOW;
        }
    }
    free(value);
    sd_bus_error_free(&error);
    return result;
}

// Asks systemd (org.freedesktop.systemd1.Manager.GetUnitByPID) which unit process `pid` belongs to, then reads the
// unit's Id and FragmentPath, and the Slice of `slice_interface` (the unit type's interface, or NULL for none).
// Returns 0 with `unit` filled, 1 when the process belongs to no unit (NoUnitForPID), or a negative errno with the
// reason in `message`. sd-bus calls are variadic, so they are made here.
static inline int lanyard_systemd_unit_of_pid(const char *address, unsigned long long timeout_usec, unsigned pid,
                                              struct lanyard_systemd_unit *unit, char *message,
                                              size_t message_size) {
    sd_bus *bus = NULL;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    const char *path = NULL;
    memset(unit, 0, sizeof(*unit));
    int result = lanyard_systemd_open_bus(address, timeout_usec, &bus);
    if (result < 0) {
        snprintf(message, message_size, "cannot connect to the system bus: %s", strerror(-result));
        return result;
    }
    result = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                "org.freedesktop.systemd1.Manager", "GetUnitByPID", &error, &reply, "u", pid);
    if (result < 0) {
        if (sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoUnitForPID")) {
            result = 1;
        } else {
            snprintf(message, message_size, "GetUnitByPID(%u): %s", pid,
                     error.message ? error.message : strerror(-result));
        }
        goto done;
    }
    result = sd_bus_message_read(reply, "o", &path);
    if (result < 0) {
        snprintf(message, message_size, "GetUnitByPID(%u) answered without an object path", pid);
        goto done;
    }
    result = lanyard_systemd_unit_property(bus, path, "org.freedesktop.systemd1.Unit", "Id", unit->id,
                                           sizeof(unit->id), message, message_size);
    if (result < 0) goto done;
    result = lanyard_systemd_unit_property(bus, path, "org.freedesktop.systemd1.Unit", "FragmentPath",
                                           unit->fragment_path, sizeof(unit->fragment_path), message,
                                           message_size);
    if (result < 0) goto done;
    // Slice lives on each unit type's own interface (Service, Scope, Socket, ...), named by the Id's suffix.
    const char *dot = strrchr(unit->id, '.');
    if (dot != NULL && dot[1] >= 'a' && dot[1] <= 'z' && strlen(dot + 1) < 16) {
        char interface[64];
        snprintf(interface, sizeof(interface), "org.freedesktop.systemd1.%c%s", dot[1] - 'a' + 'A', dot + 2);
        result = lanyard_systemd_unit_property(bus, path, interface, "Slice", unit->slice, sizeof(unit->slice),
                                               message, message_size);
    }
done:
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    sd_bus_flush_close_unref(bus);
    return result;
}

#endif
