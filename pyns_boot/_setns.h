/*
 * The namespace-joining core of pyns_boot, free of Python so that it can be
 * fuzzed, sanitized and reasoned about on its own.  _pyns_boot.c wraps it.
 * One concern a file: _order.c the table, the order and the plan (no
 * system call), _reference.c the references and whether the process is in
 * them already, _setns.c the run (open early, join, report);
 * _setns_internal.h is what they share.
 */
#ifndef PYNS_BOOT_SETNS_CORE_H
#define PYNS_BOOT_SETNS_CORE_H

#include <stddef.h>

/* Table order: the order of TYPES on the Python side and of the report. */
enum ns_kind_index {
    NS_CGROUP,
    NS_IPC,
    NS_MNT,
    NS_NET,
    NS_PID,
    NS_TIME,
    NS_USER,
    NS_UTS,
    NS_KIND_COUNT
};

struct ns_kind {
    const char *name;     /* "net": the name in gons_order */
    const char *variable; /* "gons_net" */
    int clone_flag;       /* CLONE_NEWNET: setns() nstype, NS_GET_NSTYPE */
    /* /proc/self/ns entries that must all match the reference for the
     * process to count as a member already.  pid: only the namespace for
     * children changes on setns; time: setns changes both. */
    const char *self_links[2];
    int single_threaded; /* the kernel refuses the join with 2+ threads */
};

extern const struct ns_kind ns_kinds[NS_KIND_COUNT];

/* The kind whose name is name[0..length), or -1. */
int ns_kind_by_name(const char *name, size_t length);

#define NS_ORDER_VARIABLE "gons_order"
#define NS_DEFAULT_ORDER "!user,!mnt,!cgroup,!ipc,!net,!pid,!time,!uts"

enum ns_outcome {
    NS_NOT_REQUESTED, /* variable unset or empty */
    NS_NOT_REACHED,   /* requested, but an earlier failure stopped the run */
    NS_JOINED,
    NS_ALREADY_MEMBER,
    NS_FAILED,
    NS_OUTCOME_COUNT
};

extern const char *const ns_outcome_names[NS_OUTCOME_COUNT];

struct ns_entry {
    char *path; /* copy of the requested path, NULL when not requested */
    enum ns_outcome outcome;
    int early; /* named with "!" in the effective order */
};

struct ns_report {
    int error_errno;  /* 0 on success */
    char *message;    /* full error message, NULL on success */
    int failed_kind;  /* enum ns_kind_index, or -1 */
    char *order;      /* the effective order: gons_order or the default */
    int any_requested;
    struct ns_entry entries[NS_KIND_COUNT];
    /* -1, or an O_PATH descriptor on the root the process had before the
     * first switch (ns_run_keep_root only: kept when mnt was joined, so that
     * the old tree stays reachable), and one on its mount namespace, which
     * keeps the mounts below that root attached.  ns_report_free closes
     * them; a caller taking them over sets them to -1. */
    int old_root_fd;
    int old_mnt_fd;
    /* The thread count when a join was refused because the process has
     * other threads (every type: setns moves only the calling thread), else
     * 0: the caller may add what started them to the message. */
    long threads_refused;
    /* 1 when gons_pid ended joined or already joined while the process
     * itself lives in another pid namespace (setns moves only its
     * children): the caller forks to enter it (_pid_entry.h). */
    int pid_outside;
};

/*
 * Run the whole sequence.  order: gons_order or NULL; paths: indexed by
 * enum ns_kind_index, NULL or "" for unset.  secure_mode refuses every
 * request.  Fills *report (release it with ns_report_free).  Returns 0, or
 * -1 when memory ran out (report then holds nothing to free).
 */
int ns_run(const char *order, const char *const paths[NS_KIND_COUNT],
           int secure_mode, struct ns_report *report);

/*
 * ns_run as the start-up hook runs it: every type is refused while other
 * threads exist (ns_run refuses only mnt, user and time then, which the
 * kernel joins for single-threaded processes only); and when keep_old_root is set and gons_mnt is requested: open "/"
 * (O_PATH|O_DIRECTORY|O_CLOEXEC) before the first switch and keep it in
 * report->old_root_fd if the mnt join happened (closed otherwise, on every
 * path, error paths included).
 */
int ns_run_keep_root(const char *order, const char *const paths[NS_KIND_COUNT],
                     int secure_mode, int keep_old_root,
                     struct ns_report *report);

void ns_report_free(struct ns_report *report);

/*
 * The reference check of a join, alone: open path as a join opens it
 * (O_RDONLY|O_CLOEXEC|O_NONBLOCK|O_NOCTTY), check that it is a namespace of
 * kind, close it.  *message is NULL when it is, else the run's message
 * (malloc'd: "pyns_boot: invalid gons_net reference ...") with its errno in
 * *error_errno.  Returns 0, or -1 when memory ran out (nothing to free).
 * No descriptor stays open on any path.
 */
int ns_check_reference(int kind, const char *path, int *error_errno,
                       char **message);

/*
 * A report for a run refused before it started (a setting of the caller's
 * was not understood): every requested type not reached, the error set,
 * message taken over (malloc'd; NULL counts as out of memory).  0, or -1
 * when memory ran out (nothing to free then).
 */
int ns_refuse(const char *order, const char *const paths[NS_KIND_COUNT],
              int error_errno, int kind, char *message,
              struct ns_report *report);

/* One step of the sequence: which kind, and whether it is opened early. */
struct ns_step {
    int kind;
    int early;
};

/*
 * Parse an order string into at most NS_KIND_COUNT steps.  Returns the
 * number of steps, or -1 with *error_message set to a malloc'd message
 * (or NULL when memory ran out, with *out_of_memory set).  Exposed for the
 * fuzz target.
 */
int ns_parse_order(const char *order, struct ns_step steps[NS_KIND_COUNT],
                   char **error_message, int *out_of_memory);

/*
 * What ns_run will do, decided from its inputs alone: no system call, no
 * namespace is touched, so the fuzz target can call it freely.  Parses the
 * order (gons_order, or the default when NULL or ""), checks that every set
 * variable is listed in an explicit order, and refuses everything in secure
 * mode.  On an error, message (malloc'd), error_errno (EINVAL or EPERM) and
 * failed_kind (-1 or the kind the message names) are set and ns_run stops
 * there; steps/count still hold the parsed order after an unlisted-variable
 * error.  Returns 0, or -1 when memory ran out (nothing to free then).
 */
struct ns_plan {
    int count;
    struct ns_step steps[NS_KIND_COUNT];
    int requested[NS_KIND_COUNT]; /* the variable is set and non-empty */
    int needs_single_thread;      /* a requested mnt, user or time step */
    int error_errno;
    int failed_kind;
    char *message;
};

int ns_plan(const char *order, const char *const paths[NS_KIND_COUNT],
            int secure_mode, struct ns_plan *plan);

void ns_plan_free(struct ns_plan *plan);


#endif
