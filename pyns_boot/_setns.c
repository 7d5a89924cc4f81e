/*
 * parse the order, plan the joins, open the references, join, report.
 * See _setns.h for the interface and env-interface.md for the rules.
 */
#define _GNU_SOURCE
#include "_setns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef NS_GET_PID_FROM_PIDNS /* Linux 6.11; older headers lack it */
#define NS_GET_PID_FROM_PIDNS _IOR(NSIO, 0x6, int)
#endif

const struct ns_kind ns_kinds[NS_KIND_COUNT] = {
    [NS_CGROUP] = {"cgroup", "gons_cgroup", CLONE_NEWCGROUP, {"cgroup", NULL}, 0},
    [NS_IPC] = {"ipc", "gons_ipc", CLONE_NEWIPC, {"ipc", NULL}, 0},
    [NS_MNT] = {"mnt", "gons_mnt", CLONE_NEWNS, {"mnt", NULL}, 1},
    [NS_NET] = {"net", "gons_net", CLONE_NEWNET, {"net", NULL}, 0},
    [NS_PID] = {"pid", "gons_pid", CLONE_NEWPID, {"pid_for_children", NULL}, 0},
    [NS_TIME] = {"time", "gons_time", CLONE_NEWTIME,
                 {"time", "time_for_children"}, 1},
    [NS_USER] = {"user", "gons_user", CLONE_NEWUSER, {"user", NULL}, 1},
    [NS_UTS] = {"uts", "gons_uts", CLONE_NEWUTS, {"uts", NULL}, 0},
};

const char *const ns_outcome_names[NS_OUTCOME_COUNT] = {
    [NS_NOT_REQUESTED] = "not_requested",
    [NS_NOT_REACHED] = "not_reached",
    [NS_JOINED] = "joined",
    [NS_ALREADY_MEMBER] = "already_joined",
    [NS_FAILED] = "failed",
};

#define MESSAGE_PREFIX "pyns_boot: "
#define ORDER_WHITESPACE " \t\n\r\f\v"

/* A malloc'd, never truncated message; NULL only when memory ran out. */
__attribute__((format(printf, 1, 2))) static char *
format_message(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int length = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (length < 0)
        return NULL;
    char *message = malloc((size_t)length + 1);
    if (message == NULL)
        return NULL;
    va_start(args, format);
    int written = vsnprintf(message, (size_t)length + 1, format, args);
    va_end(args);
    if (written != length) {
        free(message);
        return NULL;
    }
    return message;
}

int ns_kind_by_name(const char *name, size_t length)
{
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (strlen(ns_kinds[kind].name) == length &&
            memcmp(ns_kinds[kind].name, name, length) == 0)
            return kind;
    }
    return -1;
}

static int kind_by_clone_flag(int flag)
{
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (ns_kinds[kind].clone_flag == flag)
            return kind;
    }
    return -1;
}

/* ---- phase 1: parse the order ---------------------------------------- */

int ns_parse_order(const char *order, struct ns_step steps[NS_KIND_COUNT],
                   char **error_message, int *out_of_memory)
{
    int count = 0;
    int listed[NS_KIND_COUNT] = {0};
    const char *cursor = order;

    *error_message = NULL;
    *out_of_memory = 0;
    for (;;) {
        const char *comma = strchr(cursor, ',');
        const char *end = comma != NULL ? comma : cursor + strlen(cursor);
        const char *start = cursor;
        while (start < end && strchr(ORDER_WHITESPACE, *start) != NULL)
            start++;
        while (end > start && strchr(ORDER_WHITESPACE, end[-1]) != NULL)
            end--;
        if (start < end) {
            int early = *start == '!';
            const char *name = start + early;
            size_t length = (size_t)(end - name);
            int kind = ns_kind_by_name(name, length);
            if (kind < 0) {
                *error_message = format_message(
                    MESSAGE_PREFIX "unknown namespace type \"%.*s\" in "
                    NS_ORDER_VARIABLE, (int)length, name);
                *out_of_memory = *error_message == NULL;
                return -1;
            }
            if (listed[kind]) {
                *error_message = format_message(
                    MESSAGE_PREFIX
                    "duplicate namespace type %s in " NS_ORDER_VARIABLE,
                    ns_kinds[kind].name);
                *out_of_memory = *error_message == NULL;
                return -1;
            }
            listed[kind] = 1;
            steps[count].kind = kind;
            steps[count].early = early;
            count++;
        }
        if (comma == NULL)
            break;
        cursor = comma + 1;
    }
    return count;
}

/* ---- helpers for the later phases ------------------------------------ */

struct run_state {
    const char *const *paths;
    struct ns_report *report;
    int fds[NS_KIND_COUNT];
    struct stat own_ids[NS_KIND_COUNT][2];
    int own_id_known[NS_KIND_COUNT][2];
    long threads; /* -1: unknown */
    /* At start-up every type is refused while other threads exist (they
     * would stay behind); apply() (workers, a thread that joins for itself)
     * refuses only the types the kernel joins for whole processes. */
    int start_up;
    int keep_old_root;
    struct stat own_pid; /* /proc/self/ns/pid before the first switch */
    int own_pid_known;
};

/* Record a failure.  Returns 0, or -1 when the message could not be built. */
static int fail(struct run_state *state, int error_errno, int kind,
                char *message)
{
    struct ns_report *report = state->report;
    if (message == NULL)
        return -1;
    report->error_errno = error_errno;
    report->message = message;
    report->failed_kind = kind;
    if (kind >= 0 && report->entries[kind].path != NULL)
        report->entries[kind].outcome = NS_FAILED;
    return 0;
}

/* An empty report: nothing requested, no failure, no descriptor kept. */
static void report_init(struct ns_report *report)
{
    memset(report, 0, sizeof *report);
    report->failed_kind = -1;
    report->old_root_fd = -1;
    report->old_mnt_fd = -1;
}

/* A run over paths (indexed by kind) into report, nothing opened yet. */
static void state_init(struct run_state *state, const char *const *paths,
                       struct ns_report *report)
{
    memset(state, 0, sizeof *state);
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        state->fds[kind] = -1;
    state->paths = paths;
    state->report = report;
    state->threads = -1;
}

static void close_all(struct run_state *state)
{
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (state->fds[kind] >= 0) {
            close(state->fds[kind]);
            state->fds[kind] = -1;
        }
    }
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
    return fail(state, error_errno, kind,
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
        return fail(state, EINVAL, kind,
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
        return fail(state, EINVAL, kind,
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
static int open_reference(struct run_state *state, int kind)
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
    state_init(&state, paths, &report);
    int rc = open_reference(&state, kind);
    close_all(&state);
    if (rc < 0) {
        free(report.message);
        return -1;
    }
    *error_errno = report.error_errno;
    *message = report.message; /* the caller's now (NULL when it checked) */
    return 0;
}

static void record_own_identities(struct run_state *state)
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
static void record_own_pid(struct run_state *state)
{
    if (state->paths[NS_PID] != NULL)
        state->own_pid_known = stat("/proc/self/ns/pid", &state->own_pid) == 0;
}

/* After the pid step: does the process itself still live elsewhere? */
static void note_pid_outside(struct run_state *state)
{
    struct stat target;
    state->report->pid_outside =
        !state->own_pid_known || fstat(state->fds[NS_PID], &target) < 0 ||
        target.st_dev != state->own_pid.st_dev ||
        target.st_ino != state->own_pid.st_ino;
}

static int is_member(struct run_state *state, int kind)
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

/* Field 20 of /proc/self/stat; -1 when it cannot be read. */
static long count_threads(void)
{
    char buffer[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t length = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (length <= 0)
        return -1;
    buffer[length] = '\0';
    /* The command name (field 2) may hold spaces and parentheses. */
    char *field = strrchr(buffer, ')');
    if (field == NULL)
        return -1;
    for (int number = 2; number < 20; number++) {
        field = strchr(field + 1, ' ');
        if (field == NULL)
            return -1;
    }
    /* Digits by hand, not strtol: glibc 2.38+ headers turn strtol into
     * __isoc23_strtol@GLIBC_2.38, and a helper built there (Debian sid's
     * 3.15) would then not load on an older glibc. */
    const char *digit = field + 1;
    long threads = 0;
    while (*digit >= '0' && *digit <= '9' && threads < 1000000)
        threads = threads * 10 + (*digit++ - '0');
    return digit == field + 1 ? -1 : threads;
}

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

/* ---- phase 2: plan (pure: no system call) ----------------------------- */

static int requested_path(const char *path)
{
    return path != NULL && path[0] != '\0';
}

static int plan_error(struct ns_plan *plan, int error_errno, int kind,
                      char *message)
{
    if (message == NULL)
        return -1;
    plan->error_errno = error_errno;
    plan->failed_kind = kind;
    plan->message = message;
    return 0;
}

static int refuse_secure_mode(struct ns_plan *plan, const char *order,
                              const char *const paths[NS_KIND_COUNT])
{
    /* "gons_net=\"/x\", gons_order=\"net\"": each set variable, grown by one
     * format_message per item (NULL from there on when memory ran out) */
    char *list = strdup("");
    for (int kind = 0; list != NULL && kind <= NS_KIND_COUNT; kind++) {
        const char *name = kind < NS_KIND_COUNT ? ns_kinds[kind].variable
                                                : NS_ORDER_VARIABLE;
        const char *value = kind < NS_KIND_COUNT
                                ? (plan->requested[kind] ? paths[kind] : NULL)
                                : order;
        if (value == NULL)
            continue;
        char *longer = format_message("%s%s%s=\"%s\"", list,
                                      list[0] != '\0' ? ", " : "", name, value);
        free(list);
        list = longer;
    }
    if (list == NULL)
        return -1;
    int rc = plan_error(plan, EPERM, -1,
                        format_message(MESSAGE_PREFIX
                                       "refusing %s: the interpreter runs in "
                                       "secure-execution mode (set-user-ID, "
                                       "set-group-ID or file capabilities)",
                                       list));
    free(list);
    return rc;
}

static int check_all_listed(struct ns_plan *plan, const char *order,
                            const char *const paths[NS_KIND_COUNT])
{
    int listed[NS_KIND_COUNT] = {0};
    for (int i = 0; i < plan->count; i++)
        listed[plan->steps[i].kind] = 1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (!plan->requested[kind] || listed[kind])
            continue;
        return plan_error(plan, EINVAL, kind,
                          format_message(MESSAGE_PREFIX
                                         "%s is set to \"%s\", but %s is not "
                                         "listed in " NS_ORDER_VARIABLE
                                         " \"%s\"",
                                         ns_kinds[kind].variable, paths[kind],
                                         ns_kinds[kind].name, order));
    }
    return 0;
}

void ns_plan_free(struct ns_plan *plan)
{
    free(plan->message);
    plan->message = NULL;
}

int ns_plan(const char *order, const char *const paths[NS_KIND_COUNT],
            int secure_mode, struct ns_plan *plan)
{
    int explicit_order = requested_path(order);
    int any_requested = 0;

    memset(plan, 0, sizeof *plan);
    plan->failed_kind = -1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        plan->requested[kind] = requested_path(paths[kind]);
        any_requested |= plan->requested[kind];
    }
    if (secure_mode && (any_requested || explicit_order))
        return refuse_secure_mode(plan, explicit_order ? order : NULL, paths);

    const char *effective_order = explicit_order ? order : NS_DEFAULT_ORDER;
    char *message;
    int out_of_memory;
    int count = ns_parse_order(effective_order, plan->steps, &message,
                               &out_of_memory);
    if (count < 0)
        return out_of_memory ? -1 : plan_error(plan, EINVAL, -1, message);
    plan->count = count;
    if (explicit_order && check_all_listed(plan, order, paths) < 0)
        return -1;
    if (plan->message != NULL)
        return 0;
    for (int i = 0; i < count; i++) {
        if (plan->requested[plan->steps[i].kind] &&
            ns_kinds[plan->steps[i].kind].single_threaded)
            plan->needs_single_thread = 1;
    }
    return 0;
}

/* ---- phases 3 and 4: open early, join --------------------------------- */

/* Before the first switch: a handle on the current root, through which the
 * interpreter keeps importing after the mnt join (pyns_boot/_keep_imports.py),
 * and one on the current mount namespace.  The second keeps that namespace
 * alive: when its last process leaves, the kernel would detach every mount
 * in it, and the old root would lose the mounts below it. */
/* A descriptor kept past the run never sits on 0-2: a daemon that closed
 * stdio at start and later does dup2(/dev/null, 0..2) would silently
 * replace it.  Returns fd itself, or a close-on-exec copy at 3 or higher
 * (fd is closed then); -1 with errno set, fd closed. */
static int above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int error_errno = errno;
    close(fd);
    errno = error_errno;
    return moved;
}

static int open_old_root(struct run_state *state)
{
    static const char *const what[2] = {"/", "/proc/self/ns/mnt"};
    int *fds[2] = {&state->report->old_root_fd, &state->report->old_mnt_fd};
    for (int i = 0; i < 2; i++) {
        int fd = above_stdio(
            open(what[i], i == 0 ? O_PATH | O_DIRECTORY | O_CLOEXEC
                                 : O_RDONLY | O_CLOEXEC));
        if (fd < 0) {
            int error_errno = errno;
            return fail(state, error_errno, NS_MNT,
                        format_message(MESSAGE_PREFIX
                                       "cannot keep the original root for %s "
                                       "\"%s\": %s: %s",
                                       ns_kinds[NS_MNT].variable,
                                       state->paths[NS_MNT], what[i],
                                       strerror(error_errno)));
        }
        *fds[i] = fd;
    }
    return 1;
}

static void close_old_root(struct ns_report *report)
{
    if (report->old_root_fd >= 0)
        close(report->old_root_fd);
    if (report->old_mnt_fd >= 0)
        close(report->old_mnt_fd);
    report->old_root_fd = -1;
    report->old_mnt_fd = -1;
}

/* The old root is only worth keeping when the mnt join happened. */
static void settle_old_root(struct ns_report *report)
{
    if (report->entries[NS_MNT].outcome != NS_JOINED)
        close_old_root(report);
}

/* Another thread would stay behind in the old namespace: setns moves only
 * the calling thread (and the kernel refuses mnt, user and time outright). */
static int refuse_threads(struct run_state *state, int kind)
{
    const char *variable = ns_kinds[kind].variable;
    const char *name = ns_kinds[kind].name;
    char *message;
    if (ns_kinds[kind].single_threaded)
        message = format_message(MESSAGE_PREFIX
                                 "cannot join %s using reference \"%s\": "
                                 "the process has %ld threads, and a %s "
                                 "namespace can only be joined by a "
                                 "single-threaded process",
                                 variable, state->paths[kind], state->threads,
                                 name);
    else
        message = format_message(MESSAGE_PREFIX
                                 "cannot join %s using reference \"%s\": "
                                 "the process has %ld threads, and setns "
                                 "moves only the calling thread (the others "
                                 "would stay in the old %s namespace)",
                                 variable, state->paths[kind], state->threads,
                                 name);
    state->report->threads_refused = state->threads;
    return fail(state, EINVAL, kind, message);
}

/* The process is in the requested mount namespace already: no setns, but
 * the working directory becomes "/" as a join would make it (and gons's
 * setns does), so that a relative path means the same whichever namespace
 * gons_mnt names.  The root stays: nothing was joined. */
static int stay_member_of_mnt(struct run_state *state)
{
    if (chdir("/") == 0) {
        close(state->fds[NS_MNT]);
        state->fds[NS_MNT] = -1;
        return 1;
    }
    int error_errno = errno;
    return fail(state, error_errno, NS_MNT,
                format_message(MESSAGE_PREFIX
                               "cannot join %s using reference \"%s\": the "
                               "process is a member already, and cannot "
                               "change its working directory to /: %s",
                               ns_kinds[NS_MNT].variable, state->paths[NS_MNT],
                               strerror(error_errno)));
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
static int refuse_dead_pid_namespace(struct run_state *state)
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
    return fail(state, ESRCH, NS_PID,
                format_message(MESSAGE_PREFIX
                               "cannot join %s using reference \"%s\": the "
                               "pid namespace is dead: %s, and the kernel "
                               "refuses to create any process in it (every "
                               "fork would fail with ENOMEM); name a pid "
                               "namespace whose init is running",
                               ns_kinds[NS_PID].variable, state->paths[NS_PID],
                               reason));
}

static int join_one(struct run_state *state, int kind)
{
    int rc;
    if (state->fds[kind] < 0) {
        rc = open_reference(state, kind);
        if (rc <= 0)
            return rc;
    }
    if (is_member(state, kind)) {
        state->report->entries[kind].outcome = NS_ALREADY_MEMBER;
        if (kind == NS_MNT)
            return stay_member_of_mnt(state);
    } else if (state->threads > 1 &&
               (state->start_up || ns_kinds[kind].single_threaded)) {
        return refuse_threads(state, kind);
    } else if (kind == NS_PID && (rc = refuse_dead_pid_namespace(state)) <= 0) {
        return rc;
    } else if (setns(state->fds[kind], ns_kinds[kind].clone_flag) < 0) {
        int error_errno = errno;
        return fail(state, error_errno, kind,
                    format_message(MESSAGE_PREFIX
                                   "cannot join %s using reference \"%s\": %s",
                                   ns_kinds[kind].variable, state->paths[kind],
                                   strerror(error_errno)));
    } else {
        state->report->entries[kind].outcome = NS_JOINED;
    }
    if (kind == NS_PID)
        note_pid_outside(state);
    close(state->fds[kind]);
    state->fds[kind] = -1;
    return 1;
}

static int run_steps(struct run_state *state, const struct ns_plan *plan)
{
    if (state->keep_old_root && state->paths[NS_MNT] != NULL) {
        int rc = open_old_root(state);
        if (rc <= 0)
            return rc;
    }
    record_own_identities(state);
    record_own_pid(state);
    state->threads = count_threads();

    for (int i = 0; i < plan->count; i++) {
        int kind = plan->steps[i].kind;
        if (state->paths[kind] == NULL || !plan->steps[i].early)
            continue;
        int rc = open_reference(state, kind);
        if (rc <= 0)
            return rc;
    }
    for (int i = 0; i < plan->count; i++) {
        if (state->paths[plan->steps[i].kind] == NULL)
            continue;
        int rc = join_one(state, plan->steps[i].kind);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

void ns_report_free(struct ns_report *report)
{
    free(report->message);
    free(report->order);
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        free(report->entries[kind].path);
    close_old_root(report);
    report_init(report);
}

/* The part of a report known before anything runs: the effective order
 * and, per type, the requested path (copied into the report, and into
 * requested[] as NULL or the path).  0, or -1 when memory ran out. */
static int report_requests(const char *order,
                           const char *const paths[NS_KIND_COUNT],
                           const char *requested[NS_KIND_COUNT],
                           struct ns_report *report)
{
    int explicit_order = order != NULL && order[0] != '\0';

    report_init(report);
    report->order = strdup(explicit_order ? order : NS_DEFAULT_ORDER);
    if (report->order == NULL)
        return -1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        struct ns_entry *entry = &report->entries[kind];
        int set = paths[kind] != NULL && paths[kind][0] != '\0';
        requested[kind] = set ? paths[kind] : NULL;
        entry->outcome = set ? NS_NOT_REACHED : NS_NOT_REQUESTED;
        if (set) {
            entry->path = strdup(paths[kind]);
            if (entry->path == NULL)
                return -1;
            report->any_requested = 1;
        }
    }
    return 0;
}

int ns_refuse(const char *order, const char *const paths[NS_KIND_COUNT],
              int error_errno, int kind, char *message,
              struct ns_report *report)
{
    const char *requested[NS_KIND_COUNT] = {NULL};
    if (report_requests(order, paths, requested, report) < 0 || message == NULL) {
        free(message);
        ns_report_free(report);
        return -1;
    }
    struct run_state state;
    state_init(&state, requested, report);
    return fail(&state, error_errno, kind, message);
}

static int run_sequence(const char *order,
                        const char *const paths[NS_KIND_COUNT],
                        int secure_mode, int keep_old_root, int start_up,
                        struct ns_report *report)
{
    struct run_state state;
    const char *requested[NS_KIND_COUNT] = {NULL};

    state_init(&state, requested, report);
    state.start_up = start_up;
    state.keep_old_root = keep_old_root;

    if (report_requests(order, paths, requested, report) < 0)
        goto out_of_memory;

    struct ns_plan plan;
    if (ns_plan(order, paths, secure_mode, &plan) < 0)
        goto out_of_memory;
    for (int i = 0; i < plan.count; i++)
        report->entries[plan.steps[i].kind].early = plan.steps[i].early;
    int rc;
    if (plan.message != NULL) {
        /* the report takes the message over */
        rc = fail(&state, plan.error_errno, plan.failed_kind, plan.message);
        plan.message = NULL;
    } else {
        rc = run_steps(&state, &plan);
    }
    ns_plan_free(&plan);
    close_all(&state);
    settle_old_root(report);
    if (rc < 0)
        goto out_of_memory;
    return 0;

out_of_memory:
    close_all(&state);
    ns_report_free(report);
    return -1;
}

int ns_run(const char *order, const char *const paths[NS_KIND_COUNT],
           int secure_mode, struct ns_report *report)
{
    return run_sequence(order, paths, secure_mode, 0, 0, report);
}

int ns_run_keep_root(const char *order, const char *const paths[NS_KIND_COUNT],
                     int secure_mode, int keep_old_root,
                     struct ns_report *report)
{
    return run_sequence(order, paths, secure_mode, keep_old_root, 1, report);
}
