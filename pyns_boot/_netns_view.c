/*
 * netns_view(): what `ip netns exec NAME` adds to the join of
 * /run/netns/NAME (gons_netns, pyns-boot run --netns), and netns_name_of(),
 * the one rule for a value that is a /run/netns/NAME path rather than a
 * name.  After the joins, from pyns_boot._after_joins.
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_module.h"

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

static PyObject *netns_view_error(const char *name, const char *step)
{
    int error_errno = errno;
    char *message;
    if (asprintf(&message,
                 "pyns_boot: cannot give gons_netns \"%s\" the view of ip "
                 "netns exec: %s: %s",
                 name, step, strerror(error_errno)) < 0)
        message = NULL;
    return raise_message(PyExc_OSError, error_errno, message);
}

/* Bind /etc/netns/NAME/ENTRY over /etc/ENTRY for each entry; a failed bind
 * is a line of the returned list (ip warns and goes on, and so do we). */
static PyObject *netns_bind_etc(const char *name)
{
    PyObject *failures = PyList_New(0);
    if (failures == NULL)
        return NULL;
    char directory[PATH_MAX];
    if (snprintf(directory, sizeof directory, "%s/%s", NETNS_ETC_DIR, name) >=
        (int)sizeof directory)
        return failures;
    DIR *dir = opendir(directory);
    if (dir == NULL)
        return failures; /* nothing to show for this namespace, as with ip */
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char source[PATH_MAX], target[PATH_MAX];
        if (snprintf(source, sizeof source, "%s/%s", directory,
                     entry->d_name) >= (int)sizeof source ||
            snprintf(target, sizeof target, "/etc/%s", entry->d_name) >=
                (int)sizeof target)
            continue;
        if (mount(source, target, "none", MS_BIND, NULL) == 0)
            continue;
        PyObject *line = PyUnicode_FromFormat("bind %s -> %s failed: %s", source,
                                              target, strerror(errno));
        if (line == NULL || PyList_Append(failures, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(failures);
            closedir(dir);
            return NULL;
        }
        Py_DECREF(line);
    }
    closedir(dir);
    return failures;
}

/* netns_view(name) -> [failed bind, ...]; OSError when the private mount
 * namespace or the /sys of the network namespace cannot be made. */
static PyObject *setns_netns_view(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *name_bytes;
    if (!PyArg_ParseTuple(args, "O&:netns_view", PyUnicode_FSConverter,
                          &name_bytes))
        return NULL;
    const char *name = PyBytes_AsString(name_bytes);
    PyObject *result = NULL;
    if (name == NULL)
        goto done;
    if (unshare(CLONE_NEWNS) < 0) {
        netns_view_error(name, "unshare(CLONE_NEWNS)");
        goto done;
    }
    if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) < 0) {
        netns_view_error(name, "mount --make-rslave /");
        goto done;
    }
    unsigned long flags = 0;
    struct statvfs fs;
    /* No sysfs to detach is fine; a read-only one that stays cannot be
     * shadowed by a read-write one. */
    if (umount2("/sys", MNT_DETACH) < 0 && statvfs("/sys", &fs) == 0 &&
        (fs.f_flag & ST_RDONLY))
        flags = MS_RDONLY;
    if (mount(name, "/sys", "sysfs", flags, NULL) < 0) {
        netns_view_error(name, "mount sysfs on /sys");
        goto done;
    }
    result = netns_bind_etc(name);
done:
    Py_DECREF(name_bytes);
    return result;
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
