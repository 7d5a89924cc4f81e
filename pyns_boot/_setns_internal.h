/*
 * Shared between the three files of the C core, and not an API: nothing
 * outside _order.c, _reference.c and _setns.c includes it (_setns.h is the
 * interface).  The core is split by concern: _order.c decides from the
 * inputs alone (the table, the order, the plan), _reference.c opens and
 * checks a reference and tells whether the process is in it already,
 * _setns.c runs the plan: open early, join, report.
 */
#ifndef PYNS_BOOT_SETNS_INTERNAL_H
#define PYNS_BOOT_SETNS_INTERNAL_H

#include "_setns.h"

#include <sys/stat.h>

#define MESSAGE_PREFIX "pyns_boot: "

/* A malloc'd, never truncated message; NULL only when memory ran out.
 * (_order.c) */
__attribute__((format(printf, 1, 2))) char *
format_message(const char *format, ...);

/* One run: the requested paths (indexed by kind, NULL when not requested),
 * the report it fills, and what it learnt before the first switch. */
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

/* _setns.c: the run's state and report. */
int record_failure(struct run_state *state, int error_errno, int kind,
                   char *message);
void report_init(struct ns_report *report);
void run_state_init(struct run_state *state, const char *const *paths,
                    struct ns_report *report);
void close_references(struct run_state *state);

/* _reference.c: the references and the process's own namespaces.  Those
 * returning int: 1 go ahead, 0 failure recorded, -1 out of memory. */
int open_reference(struct run_state *state, int kind);
void record_own_identities(struct run_state *state);
void record_own_pid(struct run_state *state);
void note_pid_outside(struct run_state *state);
int is_member(struct run_state *state, int kind);
int refuse_dead_pid_namespace(struct run_state *state);

#endif
