/*
 * Children of the interpreter after a mnt join with keep-imports
 * (pyns_boot/_children.py, docs/foreign-mounts.md): they start from the
 * mount namespace the process had before the join, where the interpreter,
 * its loader and its libraries are, and join the target again by
 * themselves.
 *
 *   enter_mount_namespace(fd)  the same in the calling thread: for a child
 *                              whose caller gave a preexec_fn (Python code
 *                              runs between fork and exec anyway).
 *   call_in_mount_namespace(fd, callable, args)
 *                              the call from a new thread that entered the
 *                              mount namespace fd (unshare(CLONE_FS),
 *                              setns(fd, CLONE_NEWNS)), which ends
 *                              after it: fork_exec there starts the child
 *                              in that namespace, with no Python code
 *                              between fork and exec.  (False, errno) when
 *                              entering fails, before anything is called.
 *   exec_in_mount_namespace(fd, path, argv, env, inherit)
 *                              execve from such a thread (the exec ends every
 *                              other thread).  On failure the process is as
 *                              before: returns (step, errno), step 0 for
 *                              unshare/setns, 1 for execve.
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_host_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The thread's own fs_struct (root, working directory), then the namespace:
 * setns(CLONE_NEWNS) refuses a caller that shares its fs_struct with other
 * threads, and moves only the calling thread. */
static int enter(int fd)
{
    if (unshare(CLONE_FS) < 0 || setns(fd, CLONE_NEWNS) < 0)
        return errno;
    return 0;
}

struct exec_job {
    int ns_fd;
    const char *path;
    char *const *argv;
    char *const *envp;
    const int *inherit;
    Py_ssize_t inherit_count;
    int step;
    int error;
};

static void set_cloexec(const int *fds, Py_ssize_t count, int on)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        int flags = fcntl(fds[i], F_GETFD);
        if (flags >= 0)
            fcntl(fds[i], F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
    }
}

static void *exec_thread(void *arg)
{
    struct exec_job *job = arg;
    job->step = 0;
    job->error = enter(job->ns_fd);
    if (job->error != 0)
        return NULL;
    set_cloexec(job->inherit, job->inherit_count, 0);
    execve(job->path, job->argv, job->envp);
    job->step = 1;
    job->error = errno;
    set_cloexec(job->inherit, job->inherit_count, 1);
    return NULL;
}

/* Runs job in a new thread and waits for it without the GIL.  0, or -1
 * with a Python exception set (the thread could not be made). */
static int run_job(struct exec_job *job)
{
    pthread_t thread;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_create(&thread, NULL, exec_thread, job);
    if (rc == 0)
        pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* A NULL-terminated array of the bytes objects of list; the strings stay
 * owned by list.  NULL with an exception set. */
static char **string_array(PyObject *list, const char *what)
{
    if (!PyList_Check(list)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of bytes", what);
        return NULL;
    }
    Py_ssize_t count = PyList_Size(list);
    char **array = calloc((size_t)count + 1, sizeof *array);
    if (array == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GetItem(list, i);
        if (item == NULL || !PyBytes_Check(item) ||
            (array[i] = PyBytes_AsString(item)) == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s must be a list of bytes",
                             what);
            free(array);
            return NULL;
        }
    }
    return array;
}

static PyObject *host_exec_in_mount_namespace(PyObject *Py_UNUSED(module),
                                              PyObject *args)
{
    struct exec_job job = {0};
    PyObject *path, *argv_list, *env_list, *inherit_list;
    if (!PyArg_ParseTuple(args, "iO!O!O!O!:exec_in_mount_namespace",
                          &job.ns_fd, &PyBytes_Type, &path, &PyList_Type,
                          &argv_list, &PyList_Type, &env_list, &PyList_Type,
                          &inherit_list))
        return NULL;
    PyObject *result = NULL;
    char **argv = string_array(argv_list, "argv");
    char **envp = argv != NULL ? string_array(env_list, "env") : NULL;
    Py_ssize_t count = PyList_Size(inherit_list);
    int *inherit = envp != NULL ? calloc((size_t)count + 1, sizeof *inherit)
                                : NULL;
    if (envp != NULL && inherit == NULL)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; inherit != NULL && i < count; i++) {
        inherit[i] = (int)PyLong_AsLong(PyList_GetItem(inherit_list, i));
        if (PyErr_Occurred()) {
            free(inherit);
            inherit = NULL;
        }
    }
    if (inherit != NULL) {
        job.path = PyBytes_AsString(path);
        job.argv = argv;
        job.envp = envp;
        job.inherit = inherit;
        job.inherit_count = count;
        if (job.path != NULL && run_job(&job) == 0)
            result = Py_BuildValue("(ii)", job.step, job.error);
    }
    free(inherit);
    free(envp);
    free(argv);
    return result;
}

static PyObject *host_enter_mount_namespace(PyObject *Py_UNUSED(module),
                                            PyObject *args)
{
    int fd;
    if (!PyArg_ParseTuple(args, "i:enter_mount_namespace", &fd))
        return NULL;
    int error = enter(fd);
    if (error != 0) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

struct call_job {
    int ns_fd;
    int error;
    PyObject *callable;
    PyObject *args;
    PyObject *result;
    PyObject *type, *value, *traceback;
};

static void *call_thread(void *arg)
{
    struct call_job *job = arg;
    job->error = enter(job->ns_fd);
    if (job->error != 0)
        return NULL;
    PyGILState_STATE state = PyGILState_Ensure();
    job->result = PyObject_CallObject(job->callable, job->args);
    if (job->result == NULL)
        PyErr_Fetch(&job->type, &job->value, &job->traceback);
    PyGILState_Release(state);
    return NULL;
}

static PyObject *host_call_in_mount_namespace(PyObject *Py_UNUSED(module),
                                              PyObject *args)
{
    struct call_job job = {0};
    if (!PyArg_ParseTuple(args, "iOO!:call_in_mount_namespace", &job.ns_fd,
                          &job.callable, &PyTuple_Type, &job.args))
        return NULL;
    pthread_t thread;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_create(&thread, NULL, call_thread, &job);
    if (rc == 0)
        pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (job.error != 0)
        return Py_BuildValue("(Oi)", Py_False, job.error);
    if (job.result == NULL) {
        PyErr_Restore(job.type, job.value, job.traceback);
        return NULL;
    }
    PyObject *pair = Py_BuildValue("(OO)", Py_True, job.result);
    Py_DECREF(job.result);
    return pair;
}

PyMethodDef host_exec_methods[] = {
    {"enter_mount_namespace", host_enter_mount_namespace, METH_VARARGS,
     "enter_mount_namespace(fd): unshare(CLONE_FS), then setns(fd,\n"
     "CLONE_NEWNS), in the calling thread; OSError on failure.  For the\n"
     "child of a caller's preexec_fn, after it ran, before exec."},
    {"call_in_mount_namespace", host_call_in_mount_namespace, METH_VARARGS,
     "call_in_mount_namespace(fd, callable, args) -> (True, callable(*args)),\n"
     "called in a new thread that entered the mount namespace fd (its own\n"
     "root and working directory: the namespace's), or (False, errno) when\n"
     "it could not enter fd (nothing was called).  The caller waits for it\n"
     "without the GIL.  A process it forks starts in that namespace.\n"
     "OSError when the thread cannot be made."},
    {"exec_in_mount_namespace", host_exec_in_mount_namespace, METH_VARARGS,
     "exec_in_mount_namespace(fd, path, argv, env, inherit) -> (step,\n"
     "errno) on failure (step 0: entering fd, 1: execve); no return on\n"
     "success.  execve(path, argv, env) from a new thread that entered the\n"
     "mount namespace fd, with the descriptors in inherit made inheritable\n"
     "(close-on-exec again on failure).  argv, env: lists of bytes."},
    {NULL, NULL, 0, NULL},
};
