/* Linux headers that Swift's Glibc module leaves out, for the hosted modules only. */
#ifndef UK_LINUX_H
#define UK_LINUX_H
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <poll.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>

/* Pins the calling thread to one CPU; 0 or an errno. */
int uk_pin_to_cpu(int cpu);
#include <linux/if_tun.h>

/* TAP (see TapDevice.swift). ioctl is variadic, which Swift cannot call, and the ifreq union is
 * clumsy from Swift: these keep both on the C side. */

/* Bytes an interface name may have, with its terminating NUL. */
static inline int uk_ifnamsiz(void) { return IFNAMSIZ; }

/* Attaches the /dev/net/tun file `fd` to the TAP interface `name`, creating it if absent, with
 * frames exactly as on the wire (IFF_NO_PI: no 4-byte packet-information prefix). The kernel's
 * name for it (a "%d" template filled in) goes to `actual`, IFNAMSIZ bytes. Returns 0 or errno. */
static inline int uk_tap_attach(int fd, const char *name, char *actual) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) return errno;
    memcpy(actual, ifr.ifr_name, IFNAMSIZ);
    actual[IFNAMSIZ - 1] = 0;
    return 0;
}

/* Reads one frame into `buf` (`room` bytes), spilling into `overflow` what does not fit, so
 * that a frame too long for the buffer is seen as too long rather than silently cut: a result
 * above `room` means exactly that. Returns the frame's length or -errno. */
static inline ssize_t uk_read_frame(int fd, void *buf, size_t room, void *overflow, size_t overflow_size) {
    struct iovec iov[2] = { { buf, room }, { overflow, overflow_size } };
    ssize_t n = readv(fd, iov, 2);
    return n < 0 ? -errno : n;
}

/* Writes one frame; returns the bytes written or -errno. */
static inline ssize_t uk_write_frame(int fd, const void *frame, size_t length) {
    ssize_t n = write(fd, frame, length);
    return n < 0 ? -errno : n;
}

/* vhost-user (see VirtioNetVhostUser): file descriptors passed over a unix socket as SCM_RIGHTS,
 * whose CMSG_* macros Swift cannot use, and memfd_create, which glibc declares only under
 * _GNU_SOURCE. The definitions are in uk_linux.c. */

/* The most file descriptors one vhost-user message carries (one per memory region). */
#define UK_MAX_PASSED_FDS 8

/* Sends `length` bytes of `buffer` in one sendmsg with `fd_count` (0...UK_MAX_PASSED_FDS)
 * descriptors from `fds` attached. MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
 * Returns the bytes sent (possibly fewer than `length`; the descriptors went with the first
 * byte) or -errno. */
ssize_t uk_send_with_fds(int sock, const void *buffer, size_t length, const int *fds, int fd_count);

/* Receives up to `length` bytes into `buffer` with recvmsg(flags | MSG_CMSG_CLOEXEC). Descriptors
 * that came along (up to UK_MAX_PASSED_FDS) are stored in `fds` and counted in `*fd_count`:
 * whatever the result, the caller owns and must close those. Returns the bytes received (0: the
 * peer closed) or -errno; -EMSGSIZE when the peer sent more descriptors than fit (the kernel
 * closed the extra ones). */
ssize_t uk_recv_with_fds(int sock, void *buffer, size_t length, int flags, int *fds, int *fd_count);

/* An anonymous memory file (close-on-exec) of size 0; its fd or -errno. */
int uk_memfd_create(const char *name);

/* poll(2)'s "peer shut down its writing side" event (a _GNU_SOURCE constant). */
short uk_pollrdhup(void);

/* recvmmsg/sendmmsg (kvstore's linux-batch stack): glibc declares them and struct mmsghdr only
 * under _GNU_SOURCE, which Swift's Glibc module does not see. uk_mmsghdr has mmsghdr's layout
 * (checked in uk_linux.c); the definitions are there. Both return the messages received or
 * sent (each entry's msg_len set to its bytes) or -errno. */
struct uk_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
int uk_recvmmsg(int sock, struct uk_mmsghdr *msgs, unsigned int count, int flags);
int uk_sendmmsg(int sock, struct uk_mmsghdr *msgs, unsigned int count, int flags);

/* recvmmsg's "block for the first message only, then take what is queued" flag. */
int uk_msg_waitforone(void);
#endif
