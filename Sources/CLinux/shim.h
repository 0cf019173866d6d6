// Linux kernel interfaces Swift cannot call directly: ioctl and syscall are variadic, and Debian 12's headers predate
// SO_PEERPIDFD (6.5) and PIDFD_GET_INFO (6.13). Used to pin a Workload API caller when its connection is accepted,
// and to reach a container runtime's socket only through a file its expected owner made (O_PATH is _GNU_SOURCE's).
#ifndef LANYARD_CLINUX_SHIM_H
#define LANYARD_CLINUX_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/types.h>
#include <unistd.h>

// getsockopt(SOL_SOCKET, SO_PEERPIDFD): a pidfd for the process that called connect() (Linux >= 6.5).
static inline int lanyard_SO_PEERPIDFD(void) { return 77; }

// struct pidfd_info as of Linux 6.13 (PIDFD_INFO_SIZE_VER0 = 64 bytes).
struct lanyard_pidfd_info {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid;
    uint32_t tgid;
    uint32_t ppid;
    uint32_t ruid;
    uint32_t rgid;
    uint32_t euid;
    uint32_t egid;
    uint32_t suid;
    uint32_t sgid;
    uint32_t fsuid;
    uint32_t fsgid;
    int32_t exit_code;
};

// The credentials of a pidfd's process, read by the kernel without going through /proc.
struct lanyard_process_credentials {
    uint32_t pid;
    uint32_t ruid;
    uint32_t euid;
    uint32_t rgid;
    uint32_t egid;
};

// ioctl(pidfd, PIDFD_GET_INFO) with PIDFD_INFO_PID | PIDFD_INFO_CREDS. Returns 0, or -1 with errno: ESRCH when the
// process has been reaped, ENOTTY or EINVAL when the kernel predates PIDFD_GET_INFO.
static inline int lanyard_pidfd_credentials(int pidfd, struct lanyard_process_credentials *out) {
    struct lanyard_pidfd_info info;
    memset(&info, 0, sizeof info);
    info.mask = 1 | 2;  // PIDFD_INFO_PID | PIDFD_INFO_CREDS
    unsigned long request = _IOWR(0xFF, 11, struct lanyard_pidfd_info);
    if (ioctl(pidfd, request, &info) != 0) return -1;
    if ((info.mask & 3) != 3) {
        errno = EINVAL;
        return -1;
    }
    out->pid = info.pid;
    out->ruid = info.ruid;
    out->euid = info.euid;
    out->rgid = info.rgid;
    out->egid = info.egid;
    return 0;
}

// pidfd_open(2) (Linux >= 5.3), with O_CLOEXEC implied. Returns the descriptor or -1 with errno.
static inline int lanyard_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

// pidfd_send_signal(2) (Linux >= 5.1): a signal that cannot reach a process which inherited a recycled PID.
static inline int lanyard_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

// Waits up to timeout_ms for a pidfd's process to exit: poll reports POLLIN once it has (even before it is reaped).
// Returns 1 when exited, 0 when alive, -1 on error.
static inline int lanyard_pidfd_wait_exited(int pidfd, int timeout_ms) {
    struct pollfd entry = {.fd = pidfd, .events = POLLIN, .revents = 0};
    int ready;
    do {
        ready = poll(&entry, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return -1;
    return (entry.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ? 1 : 0;
}

// Whether a pidfd's process has exited, without waiting.
static inline int lanyard_pidfd_exited(int pidfd) { return lanyard_pidfd_wait_exited(pidfd, 0); }

// The wall-clock time of boot in seconds: CLOCK_REALTIME minus CLOCK_BOOTTIME, the clock /proc/<pid>/stat's start
// times count on.
static inline double lanyard_boot_wall_time(void) {
    struct timespec wall, boot;
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    return ((double)wall.tv_sec + (double)wall.tv_nsec / 1e9) - ((double)boot.tv_sec + (double)boot.tv_nsec / 1e9);
}

#ifndef O_PATH
#define O_PATH 010000000
#endif

// Connects to the Unix socket at `path` only if the file itself (not a symlink to it) is a socket owned by
// `expected_owner`. The file is pinned first (O_PATH|O_NOFOLLOW) and checked with fstat, then connected through
// /proc/self/fd, so it cannot be swapped between the check and the connect. Sends and receives on the returned
// descriptor time out after `timeout_ms`. Returns the descriptor, or -1 with `*reason`: 1 not found or unreadable,
// 2 not a socket (a symlink included), 3 owned by `*owner` instead, 4 the connect failed (errno in `*error`).
static inline int lanyard_connect_owned_socket(const char *path, uint32_t expected_owner, int timeout_ms,
                                               int *reason, uint32_t *owner, int *error) {
    *reason = 0;
    *error = 0;
    int pinned = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pinned < 0) {
        *reason = 1;
        *error = errno;
        return -1;
    }
    struct stat status;
    if (fstat(pinned, &status) != 0) {
        *reason = 1;
        *error = errno;
        close(pinned);
        return -1;
    }
    *owner = status.st_uid;
    if (!S_ISSOCK(status.st_mode)) {
        *reason = 2;
        close(pinned);
        return -1;
    }
    if (status.st_uid != expected_owner) {
        *reason = 3;
        close(pinned);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *reason = 4;
        *error = errno;
        close(pinned);
        return -1;
    }
    struct timeval timeout = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    snprintf(address.sun_path, sizeof(address.sun_path), "/proc/self/fd/%d", pinned);
    int connected = connect(fd, (struct sockaddr *)&address, sizeof(address));
    int saved = errno;
    close(pinned);
    if (connected != 0) {
        *reason = 4;
        *error = saved;
        close(fd);
        return -1;
    }
    return fd;
}

#endif
