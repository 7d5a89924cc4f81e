/*
 * The failure policy's C side (PYNS_BOOT_ON_ERROR; its one home is
 * pyns_boot/_policy.py: values, complaint, hint) and the bounded writer
 * every start-up message goes out with.  C needs both where Python cannot
 * be reached: the last resort, when pyns_boot.hook does not import.
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_module.h"
#include "_startup.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_STATUS 125

/* ---- the failure policy's C side, and the bounded writer ---- */

/* "warn" or "ignore" when the value is exactly that, else "exit" (the
 * values and the complaint about another one: pyns_boot._policy). */
const char *policy_in_force(const char *value)
{
    if (value != NULL && strcmp(value, "warn") == 0)
        return "warn";
    if (value != NULL && strcmp(value, "ignore") == 0)
        return "ignore";
    return "exit";
}

static long milliseconds_left(const struct timespec *deadline)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
        return 0;
    return (deadline->tv_sec - now.tv_sec) * 1000 +
           (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Write text to fd without ever blocking for more than STDERR_TIMEOUT_MS in
 * all: a full pipe nobody reads must not hang the start.  Each write waits
 * for room (poll) and is at most PIPE_BUF bytes, which a pipe with room
 * takes whole.  1 when all of it got out, 0 when not. */
int write_bounded(int fd, const char *text, size_t length)
{
    struct timespec deadline;
    if (clock_gettime(CLOCK_MONOTONIC, &deadline) < 0)
        return 0;
    deadline.tv_sec += STDERR_TIMEOUT_MS / 1000;
    deadline.tv_nsec += (STDERR_TIMEOUT_MS % 1000) * 1000000L;
    while (length > 0) {
        long left = milliseconds_left(&deadline);
        struct pollfd ready = {fd, POLLOUT, 0};
        int polled = poll(&ready, 1, left > 0 ? (int)left : 0);
        if (polled < 0 && errno == EINTR)
            continue;
        if (polled <= 0 || !(ready.revents & POLLOUT))
            return 0; /* no room in time, or nowhere to report to */
        ssize_t written = write(fd, text, length < PIPE_BUF ? length : PIPE_BUF);
        if (written < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (written <= 0)
            return 0;
        text += written;
        length -= (size_t)written;
    }
    return 1;
}

/* The last resort, when pyns_boot.hook cannot be imported (or failed) where
 * it had to act, as after half an uninstall: the message alone as one line
 * in one bounded write (whatever sys.stderr buffered first), then exit 125
 * unless PYNS_BOOT_ON_ERROR is exactly "warn" (carry on) or "ignore" (carry
 * on, say nothing).  No hint, no complaint about a value not understood,
 * no exception for the pyns-boot command: those are pyns_boot._policy's. */
const char *last_resort(const char *message)
{
    const char *policy = policy_in_force(getenv(POLICY_VARIABLE));
    if (policy[0] == 'i')
        return policy;
    PyObject *stream = PySys_GetObject("stderr"); /* borrowed */
    PyObject *flushed = stream != NULL && stream != Py_None
                            ? PyObject_CallMethod(stream, "flush", NULL)
                            : NULL;
    Py_XDECREF(flushed);
    PyErr_Clear();
    size_t length = strlen(message);
    char *line = malloc(length + 1);
    if (line != NULL) {
        memcpy(line, message, length);
        line[length] = '\n';
        (void)write_bounded(2, line, length + 1);
        free(line);
    } else {
        (void)write_bounded(2, message, length); /* without its newline */
    }
    if (policy[0] == 'e')
        _exit(EXIT_STATUS);
    return policy;
}

/* write_stderr(data): what pyns_boot._policy writes start-up messages with. */
static PyObject *setns_write_stderr(PyObject *Py_UNUSED(module), PyObject *data)
{
    char *text;
    Py_ssize_t length;
    if (PyBytes_AsStringAndSize(data, &text, &length) < 0)
        return NULL;
    int complete;
    Py_BEGIN_ALLOW_THREADS
    complete = write_bounded(2, text, (size_t)length);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(complete);
}

PyMethodDef policy_methods[] = {
    {"write_stderr", setns_write_stderr, METH_O,
     "write_stderr(data) -> True when all of the bytes reached fd 2; waits\n"
     "at most STDERR_TIMEOUT_MS for room."},
    {NULL, NULL, 0, NULL},
};
