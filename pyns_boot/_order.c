/*
 * The namespace table, the order and the plan: what a run will do, decided
 * from its inputs alone (gons_order and which gons_* variables are set).
 * Nothing here makes a system call or touches a namespace, so the fuzz
 * target (fuzz/fuzz_plan.c) calls it freely.  The references are
 * _reference.c's, the run itself _setns.c's; see _setns.h for the interface
 * and env-interface.md for the rules.
 */
#define _GNU_SOURCE
#include "_setns_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
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

#define ORDER_WHITESPACE " \t\n\r\f\v"

/* A malloc'd, never truncated message; NULL only when memory ran out. */
char *format_message(const char *format, ...)
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