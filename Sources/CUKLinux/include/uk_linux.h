/* Linux headers that Swift's Glibc module leaves out, for the hosted modules only. */
#ifndef UK_LINUX_H
#define UK_LINUX_H
#include <sys/eventfd.h>
#include <poll.h>
#include <errno.h>
static inline int uk_errno(void) { return errno; }
#endif
