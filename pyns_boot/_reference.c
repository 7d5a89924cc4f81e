/*
 * The references: what a path names (open it as a join opens it, check
 * that it is a namespace of its kind), whether the process is in that
 * namespace already, and whether a pid namespace can still take a process.
 * _setns.c's run calls these for each step; see _setns.h for the interface.
 */
#define _GNU_SOURCE
#include "_setns_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef NS_GET_PID_FROM_PIDNS /* Linux 6.11; older headers lack it */
#define NS_GET_PID_FROM_PIDNS _IOR(NSIO, 0x6, int)
#endif

/* ---- what a reference is --------------------------------------------- */

static int kind_by_clone_flag(int flag)
{
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (ns_kinds[kind].clone_flag == flag)
            return kind;
    }
    return -1;
}

static const char *file_kind(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR: return "a directory";
    case S_IFREG: return "a regular file";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link";
    default: return "not a namespace";
    }
}

/* The head of every message about a reference that is not a namespace of
 * its kind; its arguments: the kind's variable, the path. */
#define INVALID_REFERENCE MESSAGE_PREFIX "invalid %s reference \"%s\": "

static int fail_invalid(struct run_state *state, int kind, int error_errno,
                        const char *reason)
{
    return record_failure(
        state, error_errno, kind,
        format_message(INVALID_REFERENCE "%s", ns_kinds[kind].variable,
                       state->paths[kind], reason));
}

/* The clone flag of the namespace fd refers to, or -1 with errno set.
 * NS_GET_NSTYPE needs Linux 4.11 (ENOTTY before), and qemu-user does not
 * translate the nsfs ioctls (ENOSYS: an aarch64 interpreter on an x86_64
 * host).  There the type is the prefix nsfs gives the descriptor's link,
 * "uts:[4026531838]"; 0 for a type this code does not know. */
static int namespace_type(int fd)
{
    int flag = ioctl(fd, NS_GET_NSTYPE);
    if (flag >= 0 || (errno != ENOTTY && errno != ENOSYS))
        return flag;
    int ioctl_errno = errno;
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(path, link, sizeof link - 1);
    char *colon = NULL;
    if (length > 0) {
        link[length] = '\0';
        colon = strchr(link, ':');
    }
    if (colon == NULL) {
        errno = ioctl_errno;
        return -1;
    }
    *colon = '\0';
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (strcmp(ns_kinds[kind].name, link) == 0)
            return ns_kinds[kind].clone_flag;
    }
    return 0;
}

/* Check that fd refers to a namespace of the given kind.  Returns 1 when it
 * does, 0 after recording the failure, -1 when memory ran out. */
static int verify_reference(struct run_state *state, int kind, int fd)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0)
        return fail_invalid(state, kind, errno, strerror(errno));
    if (fs.f_type != NSFS_MAGIC) {
        struct stat st;
        const char *what = fstat(fd, &st) == 0 ? file_kind(st.st_mode)
                                               : "not a namespace";
        return record_failure(
            state, EINVAL, kind,
            format_message(INVALID_REFERENCE
                           "not a namespace reference (it is %s)",
                           ns_kinds[kind].variable, state->paths[kind],
                           what));
    }
    int flag = namespace_type(fd);
    if (flag < 0)
        return fail_invalid(state, kind, errno, strerror(errno));
    if (flag != ns_kinds[kind].clone_flag) {
        int actual = kind_by_clone_flag(flag);
        return record_failure(
            state, EINVAL, kind,
            format_message(INVALID_REFERENCE
                           "it is a namespace of type %s, not %s",
                           ns_kinds[kind].variable, state->paths[kind],
                           actual >= 0 ? ns_kinds[actual].name
                                       : "unknown",
                           ns_kinds[kind].name));
    }
    return 1;
}

/* Open and verify the reference of one kind.  1: open, 0: failure
 * recorded, -1: out of memory. */
int open_reference(struct run_state *state, int kind)
{
    int fd = open(state->paths[kind],
                  O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return fail_invalid(state, kind, errno, strerror(errno));
    state->fds[kind] = fd;
    return verify_reference(state, kind, fd);
}

int ns_check_reference(int kind, const char *path, int *error_errno,
                       char **message)
{
    const char *paths[NS_KIND_COUNT] = {NULL};
    struct ns_report report;
    struct run_state state;

    paths[kind] = path;
    report_init(&report);
    run_state_init(&state, paths, &report);
    int rc = open_reference(&state, kind);
    close_references(&state);
    if (rc < 0) {
        free(report.message);
        return -1;
    }
    *error_errno = report.error_errno;
    *message = report.message; /* the caller's now (NULL when it checked) */
    return 0;
}

/* ---- whether the process is in it already ---------------------------- */

/* The namespaces the calling thread is in, for each requested kind,
 * before the first switch. */
void record_own_identities(struct run_state *state)
{
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (state->paths[kind] == NULL)
            continue;
        for (int i = 0; i < 2; i++) {
            const char *link = ns_kinds[kind].self_links[i];
            char path[64];
            /* the calling thread's: setns moves that thread alone, and
             * apply() may run in a thread whose namespaces differ from the
             * main thread's (/proc/self); /proc/self where the kernel has
             * no thread-self (before Linux 3.17) */
            for (int self = 0; link != NULL && self < 2; self++) {
                snprintf(path, sizeof path, "/proc/%s/ns/%s",
                         self == 0 ? "thread-self" : "self", link);
                if (stat(path, &state->own_ids[kind][i]) == 0) {
                    state->own_id_known[kind][i] = 1;
                    break;
                }
            }
        }
    }
}

/* The pid namespace the process itself is in (not the one for its
 * children), read before the first switch: after a mnt join /proc may be
 * another one. */
void record_own_pid(struct run_state *state)
{
    if (state->paths[NS_PID] != NULL)
        state->own_pid_known = stat("/proc/self/ns/pid", &state->own_pid) == 0;
}

/* After the pid step: does the process itself still live elsewhere? */
void note_pid_outside(struct run_state *state)
{
    struct stat target;
    state->report->pid_outside =
        !state->own_pid_known || fstat(state->fds[NS_PID], &target) < 0 ||
        target.st_dev != state->own_pid.st_dev ||
        target.st_ino != state->own_pid.st_ino;
}

/* 1 when the process is in the namespace of kind's open reference already
 * (each of the kind's /proc/self/ns entries matches it). */
int is_member(struct run_state *state, int kind)
{
    struct stat reference;
    if (fstat(state->fds[kind], &reference) < 0)
        return 0;
    for (int i = 0; i < 2; i++) {
        if (ns_kinds[kind].self_links[i] == NULL)
            continue;
        if (!state->own_id_known[kind][i])
            return 0;
        if (state->own_ids[kind][i].st_dev != reference.st_dev ||
            state->own_ids[kind][i].st_ino != reference.st_ino)
            return 0;
    }
    return 1;
}

/* ---- whether a pid namespace takes a process ------------------------- */

/* 1 when the process pid (of the caller's pid namespace) has exited: its
 * pidfd polls readable from then on, zombie included.  0 when it runs, or
 * when the kernel has no pidfd_open. */
static int init_has_exited(int pid)
{
#ifdef SYS_pidfd_open
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return errno == ESRCH; /* reaped since */
    struct pollfd exited = {pidfd, POLLIN, 0};
    int rc = poll(&exited, 1, 0);
    close(pidfd);
    return rc > 0 && (exited.revents & POLLIN);
#else
    (void)pid;
    return 0;
#endif
}

/* A pid namespace whose process 1 is gone takes no new process: setns
 * succeeds, then every fork fails with ENOMEM.  The kernel (6.11+) says
 * where process 1 of the namespace is (NS_GET_PID_FROM_PIDNS, ESRCH when
 * there is none); NS_GET_PARENT succeeds only for a namespace below the
 * caller's, the only kind setns accepts besides its own, so that an ESRCH
 * from a namespace setns would refuse anyway is not taken for a dead one.
 * (A namespace that never had a process 1 cannot be opened at all:
 * /proc/PID/ns/pid_for_children is ENOENT until its init exists.)  An init
 * that exited but was not reaped (a zombie) has a pidfd that polls
 * readable.  Older kernels, or a seccomp filter that blocks these calls:
 * nothing is known, and the join goes ahead.  Returns 1 (go ahead), 0
 * (failure recorded), -1 (out of memory). */
int refuse_dead_pid_namespace(struct run_state *state)
{
    int fd = state->fds[NS_PID];
    const char *reason = NULL;
    int init = ioctl(fd, NS_GET_PID_FROM_PIDNS, 1);
    if (init < 0 && errno == ESRCH) {
        int parent = ioctl(fd, NS_GET_PARENT);
        if (parent >= 0) {
            close(parent);
            reason = "its process 1 (init) has exited";
        }
    } else if (init > 0 && init_has_exited(init)) {
        reason = "its process 1 (init) has exited (a zombie its parent "
                 "has not reaped)";
    }
    if (reason == NULL)
        return 1;
    return record_failure(
        state, ESRCH, NS_PID,
        format_message(MESSAGE_PREFIX
                       "cannot join %s using reference \"%s\": the "
                       "pid namespace is dead: %s, and the kernel "
                       "refuses to create any process in it (every "
                       "fork would fail with ENOMEM); name a pid "
                       "namespace whose init is running",
                       ns_kinds[NS_PID].variable, state->paths[NS_PID],
                       reason));
}