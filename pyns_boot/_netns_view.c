/*
 * The view of `ip netns exec NAME` after the join of /run/netns/NAME:
 * netns_view_at_startup() for gons_netns (run() in _startup.c, before any
 * Python after the joins), netns_view() for the workers; and
 * netns_name_of(), the one rule for a value that is a /run/netns/NAME path
 * rather than a name.
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_module.h"
#include "_startup.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

/* ---- netns_view(): what `ip netns exec NAME` adds to the net join ----
 *
 * iproute2's netns_switch() (lib/namespace.c) after its setns: a private
 * mount namespace (unshare, then / made rslave so nothing propagates back),
 * a sysfs of the new network namespace on /sys, and every file of
 * /etc/netns/NAME bound over its /etc namesake.  Only this process (and its
 * children) sees the result; the host's files stay as they are. */

#define NETNS_ETC_DIR "/etc/netns"

/* The private mount namespace and the network namespace's sysfs: 0, or -1
 * with errno set and *step naming what failed. */
static int make_view(const char *name, const char **step)
{
    *step = "unshare(CLONE_NEWNS)";
    if (unshare(CLONE_NEWNS) < 0)
        return -1;
    *step = "mount --make-rslave /";
    if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) < 0)
        return -1;
    unsigned long flags = 0;
    struct statvfs fs;
    /* No sysfs to detach is fine; a read-only one that stays cannot be
     * shadowed by a read-write one. */
    if (umount2("/sys", MNT_DETACH) < 0 && statvfs("/sys", &fs) == 0 && (fs.f_flag & ST_RDONLY))
        flags = MS_RDONLY;
    *step = "mount sysfs on /sys";
    return mount(name, "/sys", "sysfs", flags, NULL) < 0 ? -1 : 0;
}

/* Bind /etc/netns/NAME/ENTRY over /etc/ENTRY for each entry; each failed
 * bind goes to failed(data, line) (ip warns and goes on, and so do we),
 * which returns -1 to stop.  0, or -1 when failed() stopped. */
static int bind_etc(const char *name, int (*failed)(void *, const char *), void *data)
{
    char directory[PATH_MAX];
    if (snprintf(directory, sizeof directory, "%s/%s", NETNS_ETC_DIR, name) >= (int)sizeof directory)
        return 0;
    DIR *dir = opendir(directory);
    if (dir == NULL)
        return 0; /* nothing to show for this namespace, as with ip */
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char source[PATH_MAX], target[PATH_MAX], line[3 * PATH_MAX];
        if (snprintf(source, sizeof source, "%s/%s", directory, entry->d_name) >= (int)sizeof source ||
            snprintf(target, sizeof target, "/etc/%s", entry->d_name) >= (int)sizeof target)
            continue;
        if (mount(source, target, "none", MS_BIND, NULL) == 0)
            continue;
        snprintf(line, sizeof line, "bind %s -> %s failed: %s", source, target, strerror(errno));
        rc = failed(data, line);
    }
    closedir(dir);
    return rc;
}

static char *view_message(const char *name, const char *step, int error_errno)
{
    char *message;
    if (asprintf(&message, "pyns_boot: cannot give gons_netns \"%s\" the view of ip netns exec: %s: %s", name, step,
                 strerror(error_errno)) < 0)
        return NULL;
    return message;
}

static int write_failure(void *name, const char *line)
{
    char text[4 * PATH_MAX];
    int length = snprintf(text, sizeof text, "pyns_boot: gons_netns=%s: %s\n", (const char *)name, line);
    (void)write_bounded(2, text, length < (int)sizeof text ? (size_t)length : sizeof text - 1);
    return 0;
}

char *netns_view_at_startup(const char *name, int *error_errno)
{
    const char *step;
    if (make_view(name, &step) < 0) {
        *error_errno = errno;
        char *message = view_message(name, step, errno);
        return message != NULL ? message : strdup("");
    }
    (void)bind_etc(name, write_failure, (void *)name);
    return NULL;
}

static int append_failure(void *list, const char *line)
{
    PyObject *text = PyUnicode_DecodeFSDefault(line);
    int rc = text != NULL ? PyList_Append((PyObject *)list, text) : -1;
    Py_XDECREF(text);
    return rc;
}

/* netns_view(name) -> [failed bind, ...]; OSError when the private mount
 * namespace or the /sys of the network namespace cannot be made.  For the
 * workers (pyns_boot._worker_server); the start-up's is
 * netns_view_at_startup. */
static PyObject *setns_netns_view(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *name_bytes;
    if (!PyArg_ParseTuple(args, "O&:netns_view", PyUnicode_FSConverter, &name_bytes))
        return NULL;
    const char *name = PyBytes_AsString(name_bytes), *step;
    PyObject *failures = NULL;
    if (name != NULL && make_view(name, &step) < 0) {
        int error_errno = errno;
        raise_message(PyExc_OSError, error_errno, view_message(name, step, error_errno));
    } else if (name != NULL && (failures = PyList_New(0)) != NULL && bind_etc(name, append_failure, failures) < 0) {
        Py_CLEAR(failures);
    }
    Py_DECREF(name_bytes);
    return failures;
}

/* ---- netns_name_of(): a /run/netns/NAME path given where a name goes ---- */

/* The NAME of a value that is a path to /run/netns/NAME (lexically: "//",
 * "." and ".." components resolved, as os.path.normpath does), copied into
 * name (size bytes); 0 when it is not such a path or does not fit. */
int netns_name_of(const char *value, char *name, size_t size)
{
    char copy[PATH_MAX];
    size_t length = strlen(value);
    if (value[0] != '/' || length >= sizeof copy)
        return 0;
    memcpy(copy, value, length + 1);
    while (length > 1 && copy[length - 1] == '/')
        copy[--length] = '\0';
    char *slash = strrchr(copy, '/');
    const char *tail = slash + 1;
    if (tail[0] == '\0' || strcmp(tail, ".") == 0 || strcmp(tail, "..") == 0 ||
        strlen(tail) >= size)
        return 0;
    *slash = '\0';
    /* The directory part, normalized: at most PATH_MAX / 2 components. */
    const char *parts[PATH_MAX / 2];
    int count = 0;
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            count -= count > 0;
            continue;
        }
        parts[count++] = part;
    }
    if (count != 2 || strcmp(parts[0], "run") != 0 || strcmp(parts[1], "netns") != 0)
        return 0;
    memcpy(name, tail, strlen(tail) + 1);
    return 1;
}

static PyObject *setns_netns_name_of(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *value_bytes;
    if (!PyArg_ParseTuple(args, "O&:netns_name_of", PyUnicode_FSConverter,
                          &value_bytes))
        return NULL;
    const char *value = PyBytes_AsString(value_bytes);
    char name[NAME_MAX + 1];
    PyObject *result = NULL;
    if (value != NULL)
        result = netns_name_of(value, name, sizeof name)
                     ? PyUnicode_DecodeFSDefault(name)
                     : (Py_INCREF(Py_None), Py_None);
    Py_DECREF(value_bytes);
    return result;
}

PyMethodDef netns_view_methods[] = {
    {"netns_view", setns_netns_view, METH_VARARGS,
     "netns_view(name) -> [failed bind, ...]: after joining /run/netns/NAME,\n"
     "what ip netns exec adds: a private mount namespace, the namespace's\n"
     "sysfs on /sys, /etc/netns/NAME/* bound over /etc.  OSError when the\n"
     "mount namespace or /sys cannot be made."},
    {"netns_name_of", setns_netns_name_of, METH_VARARGS,
     "netns_name_of(value) -> NAME when value is a path to /run/netns/NAME\n"
     "(normalized as os.path.normpath does), else None."},
    {NULL, NULL, 0, NULL},
};
