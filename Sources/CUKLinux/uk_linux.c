/* The inline helpers are in include/uk_linux.h; what needs _GNU_SOURCE lives here. */
#define _GNU_SOURCE
#include <sched.h>
#include "uk_linux.h"

int uk_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

#include <sys/mman.h>
#include <sys/socket.h>

ssize_t uk_send_with_fds(int sock, const void *buffer, size_t length, const int *fds, int fd_count) {
    if (fd_count < 0 || fd_count > UK_MAX_PASSED_FDS) return -EINVAL;
    struct iovec iov = { (void *)buffer, length };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    /* A union keeps the control buffer aligned for struct cmsghdr. */
    union {
        char bytes[CMSG_SPACE(sizeof(int) * UK_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    if (fd_count > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)fd_count);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)fd_count);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)fd_count);
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

ssize_t uk_recv_with_fds(int sock, void *buffer, size_t length, int flags, int *fds, int *fd_count) {
    struct iovec iov = { buffer, length };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
        char bytes[CMSG_SPACE(sizeof(int) * UK_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    *fd_count = 0;
    ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    if (n < 0) return -errno;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
            if (*fd_count < UK_MAX_PASSED_FDS) fds[(*fd_count)++] = fd; else close(fd);
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) return -EMSGSIZE;
    return n;
}

int uk_memfd_create(const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

short uk_pollrdhup(void) { return POLLRDHUP; }

#include <stddef.h>

_Static_assert(sizeof(struct uk_mmsghdr) == sizeof(struct mmsghdr), "uk_mmsghdr: mmsghdr's size");
_Static_assert(offsetof(struct uk_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "uk_mmsghdr: mmsghdr's layout");

int uk_recvmmsg(int sock, struct uk_mmsghdr *msgs, unsigned int count, int flags) {
    int n = recvmmsg(sock, (struct mmsghdr *)msgs, count, flags, NULL);
    return n < 0 ? -errno : n;
}

int uk_sendmmsg(int sock, struct uk_mmsghdr *msgs, unsigned int count, int flags) {
    int n = sendmmsg(sock, (struct mmsghdr *)msgs, count, flags);
    return n < 0 ? -errno : n;
}

int uk_msg_waitforone(void) { return MSG_WAITFORONE; }
