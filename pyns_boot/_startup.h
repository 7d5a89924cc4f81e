/*
 * The start-up hook's C side, shared by its files (include after Python.h):
 *   _startup.c    run(): the flow, its one record, the pid entry's fork
 *   _variables.c  what the variables ask for, read once before the joins
 *   _policy.c     the failure policy's C side and the bounded writer
 */
#ifndef PYNS_BOOT_STARTUP_H
#define PYNS_BOOT_STARTUP_H

#include <limits.h>

#include "_setns.h"

#define POLICY_VARIABLE "PYNS_BOOT_ON_ERROR"
#define KEEP_IMPORTS_VARIABLE "PYNS_BOOT_KEEP_IMPORTS"
#define OLD_ROOT_FDS_VARIABLE "PYNS_BOOT_OLD_ROOT_FDS"
#define NETNS_VARIABLE "gons_netns"
#define WD_VARIABLE "PYNS_BOOT_WD"
#define SETGID_VARIABLE "PYNS_BOOT_SETGID"
#define SETUID_VARIABLE "PYNS_BOOT_SETUID"
#define NETNS_DIR "/run/netns"
#define STDERR_TIMEOUT_MS 1000 /* how long a message may wait for room */

/* The variables of the steps after the joins, in the order they are taken
 * (AFTER_JOINS_VARIABLES). */
extern const char *const after_joins_variables[];
#define AFTER_JOINS_COUNT 4

/* What the variables ask for, read once before the joins (read_startup). */
struct startup {
    const char *paths[NS_KIND_COUNT];
    const char *order;
    char netns_path[PATH_MAX]; /* gons_netns NAME as /run/netns/NAME */
    char *netns;               /* the NAME (a copy: the variables go), or NULL */
    char *wd;                  /* PYNS_BOOT_WD (a copy), or NULL */
    int wd_fd;                 /* its !DIR, opened before the joins, or -1 */
    long long gid, uid;        /* -1: not asked for */
    int mnt, keep_imports;     /* gons_mnt set; and imports stay on this side */
    char *inherited;           /* PYNS_BOOT_OLD_ROOT_FDS (_children.py; a copy) */
    const char *policy_value;  /* PYNS_BOOT_ON_ERROR as given, or NULL */
    char cwd[PATH_MAX];        /* with gons_mnt: the working directory here */
};

/* The value of a variable that is set and not empty, else NULL. */
const char *set_variable(const char *name);

/* Any variable the start-up acts on is set (empty counts: the .pth line's
 * test). */
int any_variable_set(void);

/* Read the variables into s.  NULL, or the refusal's message (malloc'd;
 * "" when memory ran out) with its errno in *error_errno: no join then.
 * Either way, release_startup(s) frees its copies afterwards. */
char *read_startup(struct startup *s, int *error_errno);
void release_startup(struct startup *s);

/* Python has steps to take after the joins: keep imports after gons_mnt
 * (and for descriptors handed down), the steps of _after_joins.py.  It is
 * imported before the joins then. */
int python_steps(const struct startup *s);

/* PYNS_BOOT_ON_ERROR has a value that is not understood: after a join,
 * pyns_boot._policy says so when the package is there. */
int policy_not_understood(const struct startup *s);

/* Remove every variable the start-up acted on, from os.environ and the C
 * environment.  0, or -1 with an exception set. */
int remove_variables(void);

/* The view of ip netns exec for gons_netns NAME, after the net join: NULL,
 * or why it could not be made (malloc'd; "" when memory ran out) with its
 * errno.  A bind that fails is a line on stderr, as ip says it. */
char *netns_view_at_startup(const char *name, int *error_errno);

/* "warn" or "ignore" when the value is exactly that, else "exit". */
const char *policy_in_force(const char *value);

/* Write text to fd, bounded by STDERR_TIMEOUT_MS: 1 when all got out. */
int write_bounded(int fd, const char *text, size_t length);

/* The message alone, under the policy, without Python: exits 125 under
 * exit; returns the policy applied ("warn" or "ignore") otherwise. */
const char *last_resort(const char *message);

#endif
