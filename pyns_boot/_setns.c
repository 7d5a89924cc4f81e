/*
 * The C core that opens, checks and joins: the run of a plan (_order.c)
 * over its references (_reference.c): open the "!" references early, join
 * each step in order, report what happened.  See _setns.h for the
 * interface and env-interface.md for the rules.
 */
#define _GNU_SOURCE
#include "_setns_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the run's state and its report ---------------------------------- */

/* Record a failure.  Returns 0, or -1 when the message could not be built. */
int record_failure(struct run_state *state, int error_errno, int kind,
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
void report_init(struct ns_report *report)
{
    memset(report, 0, sizeof *report);
    report->failed_kind = -1;
    report->old_root_fd = -1;
    report->old_mnt_fd = -1;
}

/* A run over paths (indexed by kind) into report, nothing opened yet. */
void run_state_init(struct run_state *state, const char *const *paths,
                    struct ns_report *report)
{
    memset(state, 0, sizeof *state);
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        state->fds[kind] = -1;
    state->paths = paths;
    state->report = report;
    state->threads = -1;
}

void close_references(struct run_state *state)
{
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (state->fds[kind] >= 0) {
            close(state->fds[kind]);
            state->fds[kind] = -1;
        }
    }
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
            return record_failure(
                state, error_errno, NS_MNT,
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
    return record_failure(state, EINVAL, kind, message);
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
    return record_failure(
        state, error_errno, NS_MNT,
        format_message(MESSAGE_PREFIX
                       "cannot join %s using reference \"%s\": the "
                       "process is a member already, and cannot "
                       "change its working directory to /: %s",
                       ns_kinds[NS_MNT].variable, state->paths[NS_MNT],
                       strerror(error_errno)));
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
        return record_failure(
            state, error_errno, kind,
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
    run_state_init(&state, requested, report);
    return record_failure(&state, error_errno, kind, message);
}

static int run_sequence(const char *order,
                        const char *const paths[NS_KIND_COUNT],
                        int secure_mode, int keep_old_root, int start_up,
                        struct ns_report *report)
{
    struct run_state state;
    const char *requested[NS_KIND_COUNT] = {NULL};

    run_state_init(&state, requested, report);
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
        rc = record_failure(
            &state, plan.error_errno, plan.failed_kind, plan.message);
        plan.message = NULL;
    } else {
        rc = run_steps(&state, &plan);
    }
    ns_plan_free(&plan);
    close_references(&state);
    settle_old_root(report);
    if (rc < 0)
        goto out_of_memory;
    return 0;

out_of_memory:
    close_references(&state);
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