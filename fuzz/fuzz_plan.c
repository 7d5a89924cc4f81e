/*
 * libFuzzer target for the pure part of the core, _order.c: ns_parse_order
 * and ns_plan (parse, unlisted-variable check, early/late, secure-mode
 * refusal), and ns_run in secure mode, which never opens or joins
 * anything.  Nothing here calls open() on a fuzzed path or setns(): the
 * fuzzer's own process must stay where it is.
 *
 * Input: byte 0 holds flags (bit 0: secure mode, bit 1: gons_order unset),
 * the rest is split at '\n' into gons_order and then the eight paths in
 * table order (cgroup ipc mnt net pid time user uts); missing fields are
 * unset.  Each field gets its own exactly sized buffer so that ASan sees
 * any read past its end.
 */
#include "../pyns_boot/_setns.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS (1 + NS_KIND_COUNT)

#define REQUIRE(condition)                                                     \
    do {                                                                       \
        if (!(condition))                                                      \
            abort();                                                           \
    } while (0)

static int has_prefix(const char *text, const char *prefix)
{
    return text != NULL && strncmp(text, prefix, strlen(prefix)) == 0;
}

static void check_parse(const char *order)
{
    struct ns_step steps[NS_KIND_COUNT];
    char *message = NULL;
    int out_of_memory = 0;
    int count = ns_parse_order(order, steps, &message, &out_of_memory);
    if (count < 0) {
        REQUIRE(out_of_memory || has_prefix(message, "pyns_boot: "));
        free(message);
        return;
    }
    REQUIRE(message == NULL && count <= NS_KIND_COUNT);
    int seen[NS_KIND_COUNT] = {0};
    for (int i = 0; i < count; i++) {
        REQUIRE(steps[i].kind >= 0 && steps[i].kind < NS_KIND_COUNT);
        REQUIRE(steps[i].early == 0 || steps[i].early == 1);
        REQUIRE(!seen[steps[i].kind]);
        seen[steps[i].kind] = 1;
    }
}

static void check_plan(const char *order, const char *const paths[],
                       int secure_mode)
{
    struct ns_plan plan;
    if (ns_plan(order, paths, secure_mode, &plan) < 0)
        return;
    REQUIRE(plan.count >= 0 && plan.count <= NS_KIND_COUNT);
    if (plan.message != NULL) {
        REQUIRE(has_prefix(plan.message, "pyns_boot: "));
        REQUIRE(plan.error_errno == (secure_mode ? EPERM : EINVAL));
        REQUIRE(plan.failed_kind >= -1 && plan.failed_kind < NS_KIND_COUNT);
        if (plan.failed_kind >= 0)
            REQUIRE(strstr(plan.message,
                           ns_kinds[plan.failed_kind].variable) != NULL);
    } else {
        REQUIRE(plan.error_errno == 0 && plan.failed_kind == -1);
        int explicit_order = order != NULL && order[0] != '\0';
        int listed[NS_KIND_COUNT] = {0};
        int single = 0;
        for (int i = 0; i < plan.count; i++) {
            listed[plan.steps[i].kind] = 1;
            if (plan.requested[plan.steps[i].kind] &&
                ns_kinds[plan.steps[i].kind].single_threaded)
                single = 1;
        }
        REQUIRE(single == plan.needs_single_thread);
        for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
            REQUIRE(plan.requested[kind] ==
                    (paths[kind] != NULL && paths[kind][0] != '\0'));
            if (explicit_order && plan.requested[kind])
                REQUIRE(listed[kind]);
        }
    }
    ns_plan_free(&plan);
}

/* Secure mode: ns_run refuses anything requested without a system call;
 * with nothing requested it plans the default order and opens nothing. */
static void check_secure_run(const char *order, const char *const paths[])
{
    struct ns_report report;
    if (ns_run(order, paths, 1, &report) < 0)
        return;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        enum ns_outcome outcome = report.entries[kind].outcome;
        REQUIRE(outcome == NS_NOT_REQUESTED || outcome == NS_NOT_REACHED);
    }
    if (report.any_requested || (order != NULL && order[0] != '\0'))
        REQUIRE(report.error_errno == EPERM && report.message != NULL);
    ns_report_free(&report);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int secure_mode = data[0] & 1;
    int order_unset = (data[0] >> 1) & 1;
    char *fields[FIELDS] = {NULL};
    size_t position = 1;
    for (int field = 0; field < FIELDS && position <= size; field++) {
        const uint8_t *start = data + position;
        const uint8_t *newline = memchr(start, '\n', size - position);
        size_t length = newline != NULL ? (size_t)(newline - start)
                                        : size - position;
        fields[field] = malloc(length + 1);
        if (fields[field] == NULL)
            goto done;
        memcpy(fields[field], start, length);
        fields[field][length] = '\0';
        position += length + 1;
    }

    const char *order = order_unset ? NULL : fields[0];
    const char *paths[NS_KIND_COUNT];
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        paths[kind] = fields[1 + kind];

    if (order != NULL)
        check_parse(order);
    check_parse(NS_DEFAULT_ORDER);
    check_plan(order, paths, secure_mode);
    if (secure_mode)
        check_secure_run(order, paths);

done:
    for (int field = 0; field < FIELDS; field++)
        free(fields[field]);
    return 0;
}
