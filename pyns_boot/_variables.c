/*
 * What the variables ask for besides the joins, read once before them by
 * run() (_startup.c): gons_netns (a name of /run/netns, made the net
 * join's path), PYNS_BOOT_WD (!DIR opened now), PYNS_BOOT_SETGID/SETUID
 * (numeric ids), PYNS_BOOT_KEEP_IMPORTS with gons_mnt.  A value that is
 * not understood refuses every join, with a message naming it.
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_module.h"
#include "_startup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const after_joins_variables[AFTER_JOINS_COUNT] = {
    NETNS_VARIABLE, WD_VARIABLE, SETGID_VARIABLE, SETUID_VARIABLE};

const char *set_variable(const char *name)
{
    const char *value = getenv(name);
    return value != NULL && value[0] != '\0' ? value : NULL;
}

/* ---- what the variables ask for besides the joins ---- */

int any_variable_set(void) /* a name of TRIGGER_VARIABLES (_startup.c) */
{
    if (getenv(NS_ORDER_VARIABLE) != NULL || getenv(NETNS_VARIABLE) != NULL)
        return 1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        if (getenv(ns_kinds[kind].variable) != NULL)
            return 1;
    return 0;
}

/* A numeric id of PYNS_BOOT_SETGID/SETUID, or -1 (unset); -2 when the value
 * is not one (nsenter -G/-S take 0..4294967294). */
static long long numeric_id(const char *value)
{
    if (value == NULL)
        return -1;
    size_t length = strspn(value, "0123456789");
    if (length == 0 || value[length] != '\0' || length > 10)
        return -2;
    long long id = 0; /* not strtoll: glibc 2.38+ headers bind it to __isoc23_strtoll, a newer symbol */
    for (size_t i = 0; i < length; i++)
        id = id * 10 + (value[i] - '0');
    return id <= 0xFFFFFFFELL ? id : -2;
}

/* gons_netns: a name of /run/netns, alone, and net in gons_order.  NULL,
 * or the refusal's message (malloc'd; "" when memory ran out). */
static char *check_netns(struct startup *s)
{
    const char *name = s->netns, *net = set_variable("gons_net"), *mnt = set_variable("gons_mnt");
    char *message = NULL;
    int rc = 0;
    if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        char found[NAME_MAX + 1];
        if (netns_name_of(name, found, sizeof found))
            rc = asprintf(&message, "pyns_boot: gons_netns=\"%s\" is not a network namespace name (as in: ip "
                          "netns add NAME): gons_netns=%s", name, found);
        else if (name[0] == '/')
            rc = asprintf(&message, "pyns_boot: gons_netns=\"%s\" is not a network namespace name (as in: ip "
                          "netns add NAME): gons_net=%s", name, name);
        else
            rc = asprintf(&message, "pyns_boot: gons_netns=\"%s\" is not a network namespace name (as in: ip "
                          "netns add NAME): a name is a file name in " NETNS_DIR " (ip netns list)", name);
    } else if (net != NULL) {
        rc = asprintf(&message, "pyns_boot: gons_netns=\"%s\" and gons_net=\"%s\" name the same namespace: set "
                      "one of them", name, net);
    } else if (mnt != NULL) {
        rc = asprintf(&message, "pyns_boot: gons_netns=\"%s\" makes a private copy of this mount namespace (as ip "
                      "netns exec does) and cannot be combined with gons_mnt=\"%s\": use gons_net=" NETNS_DIR "/%s",
                      name, mnt, name);
    } else if (s->order != NULL && s->order[0] != '\0') {
        char words[PATH_MAX];
        snprintf(words, sizeof words, "%s", s->order);
        int listed = 0;
        char *save = NULL;
        for (char *w = strtok_r(words, "!, \t\n", &save); w != NULL; w = strtok_r(NULL, "!, \t\n", &save))
            listed |= strcmp(w, "net") == 0;
        if (!listed)
            rc = asprintf(&message, "pyns_boot: gons_netns is set to \"%s\", but net is not listed in gons_order "
                          "\"%s\"", name, s->order);
    }
    if (rc < 0)
        return strdup("");
    if (message == NULL &&
        snprintf(s->netns_path, sizeof s->netns_path, NETNS_DIR "/%s", name) < (int)sizeof s->netns_path)
        s->paths[NS_NET] = s->netns_path;
    return message;
}

/* Read the variables into s.  NULL, or the refusal's message (malloc'd;
 * "" when memory ran out) with its errno in *error_errno: no join then. */
static char *copy_of(const char *value, int *out_of_memory)
{
    char *copy = value != NULL ? strdup(value) : NULL;
    *out_of_memory |= value != NULL && copy == NULL;
    return copy;
}

void release_startup(struct startup *s)
{
    free(s->netns);
    free(s->wd);
    free(s->inherited);
    s->netns = s->wd = s->inherited = NULL;
}

char *read_startup(struct startup *s, int *error_errno)
{
    char *message = NULL;
    int out_of_memory = 0;
    *error_errno = EINVAL;
    s->wd_fd = -1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        s->paths[kind] = getenv(ns_kinds[kind].variable);
    s->order = getenv(NS_ORDER_VARIABLE);
    /* Copies of what outlives the variables, which are removed after the joins. */
    s->netns = copy_of(set_variable(NETNS_VARIABLE), &out_of_memory);
    s->wd = copy_of(set_variable(WD_VARIABLE), &out_of_memory);
    s->inherited = copy_of(set_variable(OLD_ROOT_FDS_VARIABLE), &out_of_memory);
    if (out_of_memory)
        return strdup("");
    s->gid = numeric_id(set_variable(SETGID_VARIABLE));
    s->uid = numeric_id(set_variable(SETUID_VARIABLE));
    s->mnt = set_variable("gons_mnt") != NULL;
    s->policy_value = set_variable(POLICY_VARIABLE);
    s->cwd[0] = '\0';
    const char *keep = getenv(KEEP_IMPORTS_VARIABLE);
    s->keep_imports = s->mnt && (keep == NULL || strcmp(keep, "0") != 0);
    if (s->mnt && keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0 && strcmp(keep, "1") != 0) {
        if (asprintf(&message, "pyns_boot: " KEEP_IMPORTS_VARIABLE "=\"%s\" is not understood (expected 1 or 0); "
                     "no namespace was joined", keep) < 0)
            return strdup("");
        return message;
    }
    if (s->netns != NULL && (message = check_netns(s)) != NULL)
        return message;
    const char *ids[2][2] = {{SETGID_VARIABLE, set_variable(SETGID_VARIABLE)}, {SETUID_VARIABLE, set_variable(SETUID_VARIABLE)}};
    for (int i = 0; i < 2; i++) {
        if ((i == 0 ? s->gid : s->uid) != -2)
            continue;
        if (asprintf(&message, "pyns_boot: %s=\"%s\" is not understood (expected a numeric id)", ids[i][0],
                     ids[i][1]) < 0)
            return strdup("");
        return message;
    }
    if (s->wd != NULL && s->wd[0] == '!') {
        s->wd_fd = open(s->wd + 1, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (s->wd_fd < 0) {
            *error_errno = errno;
            if (asprintf(&message, "pyns_boot: cannot open " WD_VARIABLE "=\"%s\" before the joins: %s", s->wd,
                         strerror(errno)) < 0)
                return strdup("");
            return message;
        }
    }
    if (s->mnt && getcwd(s->cwd, sizeof s->cwd) == NULL)
        s->cwd[0] = '\0';
    return NULL;
}

int python_steps(const struct startup *s)
{
    return s->mnt || s->wd != NULL || s->gid >= 0 || s->uid >= 0 || s->inherited != NULL;
}

int policy_not_understood(const struct startup *s)
{
    return s->policy_value != NULL && strcmp(s->policy_value, policy_in_force(s->policy_value)) != 0;
}

/* os.environ.pop(name, None) for each variable the start-up acted on;
 * os.environ's __delitem__ also removes it from the C environment. */
int remove_variables(void)
{
    PyObject *os = PyImport_ImportModule("os");
    PyObject *os_environ = os != NULL ? PyObject_GetAttrString(os, "environ") : NULL;
    Py_XDECREF(os);
    if (os_environ == NULL)
        return -1;
    const char *extra[] = {NS_ORDER_VARIABLE, OLD_ROOT_FDS_VARIABLE};
    int rc = 0;
    for (int i = 0; i < NS_KIND_COUNT + AFTER_JOINS_COUNT + 2 && rc == 0; i++) {
        const char *name = i < NS_KIND_COUNT                       ? ns_kinds[i].variable
                           : i < NS_KIND_COUNT + AFTER_JOINS_COUNT ? after_joins_variables[i - NS_KIND_COUNT]
                                                                   : extra[i - NS_KIND_COUNT - AFTER_JOINS_COUNT];
        if (getenv(name) == NULL)
            continue;
        PyObject *removed = PyObject_CallMethod(os_environ, "pop", "sO", name, Py_None);
        rc = removed != NULL ? 0 : -1;
        Py_XDECREF(removed);
        if (rc == 0 && unsetenv(name) != 0)
            rc = (PyErr_SetFromErrno(PyExc_OSError), -1);
    }
    Py_DECREF(os_environ);
    return rc;
}

