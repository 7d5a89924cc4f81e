/*
 * Run the C core once, without Python, for the sanitizer and valgrind runs
 * (scripts/sanitize.sh, scripts/valgrind.sh).
 *
 *   core_driver ORDER CGROUP IPC MNT NET PID TIME USER UTS
 *
 * Each argument is a value ("-" for unset, as the environment cannot say
 * "unset" on a command line).  The driver checks each set reference alone
 * (ns_check_reference: "check TYPE errno N"), calls ns_run, prints the report,
 * frees it and checks that no descriptor was left open.  It really joins:
 * run it as its own process.
 *
 * PYNS_FAIL_ALLOC=N makes the Nth allocation of the core fail (the core is
 * linked with --wrap for malloc, strdup and strndup), so that every
 * out-of-memory path runs under the leak checkers.  Exit status: 0 report
 * printed, 2 ns_run ran out of memory, 3 a descriptor leaked, 1 usage.
 */
#define _GNU_SOURCE
#include "../../pyns_boot/_setns.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long allocations;
static long fail_at = -1;

static int allocation_fails(void)
{
    return ++allocations == fail_at;
}

void *__real_malloc(size_t size);
char *__real_strdup(const char *text);
char *__real_strndup(const char *text, size_t length);
void *__wrap_malloc(size_t size);
char *__wrap_strdup(const char *text);
char *__wrap_strndup(const char *text, size_t length);

void *__wrap_malloc(size_t size)
{
    return allocation_fails() ? NULL : __real_malloc(size);
}

char *__wrap_strdup(const char *text)
{
    return allocation_fails() ? NULL : __real_strdup(text);
}

char *__wrap_strndup(const char *text, size_t length)
{
    return allocation_fails() ? NULL : __real_strndup(text, length);
}

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    int count = 0;
    while (readdir(dir) != NULL)
        count++;
    closedir(dir);
    return count;
}

int main(int argc, char **argv)
{
    if (argc != 2 + NS_KIND_COUNT) {
        fprintf(stderr, "usage: %s ORDER CGROUP IPC MNT NET PID TIME USER UTS "
                        "(\"-\": unset)\n", argv[0]);
        return 1;
    }
    const char *fail = getenv("PYNS_FAIL_ALLOC");
    if (fail != NULL)
        fail_at = strtol(fail, NULL, 10);
    const char *order = strcmp(argv[1], "-") == 0 ? NULL : argv[1];
    const char *paths[NS_KIND_COUNT];
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        paths[kind] = strcmp(argv[2 + kind], "-") == 0 ? NULL : argv[2 + kind];

    int before = count_fds();
    /* First the reference check alone (ns_check_reference), on every set
     * path, without allocation failures: the sweep below counts ns_run's. */
    long sweep_at = fail_at;
    fail_at = -1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        if (paths[kind] == NULL || paths[kind][0] == '\0')
            continue;
        int check_errno = 0;
        char *check_message = NULL;
        if (ns_check_reference(kind, paths[kind], &check_errno,
                               &check_message) < 0) {
            printf("check %s: out of memory\n", ns_kinds[kind].name);
            return 2;
        }
        printf("check %s errno %d\n", ns_kinds[kind].name, check_errno);
        free(check_message);
    }
    if (count_fds() != before) {
        printf("descriptor leak in ns_check_reference\n");
        return 3;
    }
    fail_at = sweep_at;
    struct ns_report report;
    allocations = 0;
    int rc = ns_run(order, paths, 0, &report);
    long used = allocations;
    int after = count_fds();
    if (rc < 0) {
        printf("out of memory at allocation %ld\n", used);
        return before == after ? 2 : 3;
    }
    printf("allocations %ld\nerrno %d\nfailed %s\nmessage %s\norder %s\n", used,
           report.error_errno,
           report.failed_kind >= 0 ? ns_kinds[report.failed_kind].name : "-",
           report.message != NULL ? report.message : "-", report.order);
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        printf("%s %s %s%s\n", ns_kinds[kind].name,
               ns_outcome_names[report.entries[kind].outcome],
               report.entries[kind].early ? "!" : "",
               report.entries[kind].path != NULL ? report.entries[kind].path
                                                 : "-");
    ns_report_free(&report);
    if (before != after) {
        printf("descriptor leak: %d open before, %d after\n", before, after);
        return 3;
    }
    return 0;
}
