/*
 * The namespace-joining core of pyns_boot, free of Python so that it can be
 * fuzzed, sanitized and reasoned about on its own.  _setns.c wraps it.
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
};

/*
 * Run the whole sequence.  order: gons_order or NULL; paths: indexed by
 * enum ns_kind_index, NULL or "" for unset.  secure_mode refuses every
 * request.  Fills *report (release it with ns_report_free).  Returns 0, or
 * -1 when memory ran out (report then holds nothing to free).
 */
int ns_run(const char *order, const char *const paths[NS_KIND_COUNT],
           int secure_mode, struct ns_report *report);

void ns_report_free(struct ns_report *report);

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

#endif
