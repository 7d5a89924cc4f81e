/*
 * The start-up hook: run(), which pyns_boot.pth calls while site.py starts
 * the interpreter (docs/development.md, "How it works").  It decides once,
 * for the process: whether to act at all (once per process, the main
 * interpreter), what the variables ask for besides the joins (gons_netns,
 * PYNS_BOOT_WD, PYNS_BOOT_SETGID/SETUID, PYNS_BOOT_KEEP_IMPORTS), the
 * joins themselves (_setns.c, the kept old root for gons_mnt) and the pid
 * entry (_pid_entry.c), which variables to remove.  Then, only when there
 * is Python work, it calls Python once: pyns_boot.hook.after_joins(report,
 * steps), which words a failure with its hint under the policy, keeps
 * imports after a mnt join and takes the steps after the joins.  When even
 * that cannot be imported, the last resort here says the join's message
 * and applies the policy alone (docs/hardening.md).
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_module.h"
#include "_pid_entry.h"
#include "_startup.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#define ENTRY_MODULE "pyns_boot.hook"
#define ENTRY_NAME "after_joins"

/* The one start-up of this process: plain C data, so that every interpreter
 * of the process sees the same record. */
static int boot_done;
static struct ns_report boot_report;
static const char *boot_policy;   /* "exit", "warn", "ignore", or NULL */
static const char *boot_pid_mode; /* see pid_mode() */

/* ---- once per process, the main interpreter ---- */

typedef PyInterpreterState *(*interpreter_getter)(void);

/* 1 in the main interpreter, 0 in a subinterpreter, -1 when C cannot tell:
 * the abi3 headers of 3.8 declare neither function (3.8 has
 * _PyInterpreterState_Get, 3.9+ PyInterpreterState_Get), and a Python
 * embedded with RTLD_LOCAL hides them. */
static int main_interpreter_state(void)
{
    interpreter_getter main_getter = (interpreter_getter)dlsym(
        RTLD_DEFAULT, "PyInterpreterState_Main");
    interpreter_getter current_getter = (interpreter_getter)dlsym(
        RTLD_DEFAULT, "PyInterpreterState_Get");
    if (current_getter == NULL)
        current_getter = (interpreter_getter)dlsym(RTLD_DEFAULT,
                                                   "_PyInterpreterState_Get");
    if (main_getter == NULL || current_getter == NULL)
        return -1;
    return main_getter() == current_getter();
}

/* When C cannot tell: 3.12+'s _thread._is_main_interpreter(); without it,
 * count this as the main interpreter (pyns_boot.hook.in_main_interpreter
 * asks _xxsubinterpreters too, for a helper that did not load). */
static int in_main_interpreter(void)
{
    int state = main_interpreter_state();
    if (state >= 0)
        return state;
    PyObject *thread = PyImport_ImportModule("_thread");
    PyObject *answer = thread != NULL ? PyObject_CallMethod(
                                            thread, "_is_main_interpreter", NULL)
                                      : NULL;
    state = answer != NULL ? PyObject_IsTrue(answer) : 1;
    Py_XDECREF(answer);
    Py_XDECREF(thread);
    PyErr_Clear();
    return state != 0;
}

static PyObject *setns_in_main_interpreter(PyObject *Py_UNUSED(module),
                                           PyObject *Py_UNUSED(unused))
{
    int state = main_interpreter_state();
    if (state < 0)
        Py_RETURN_NONE;
    return PyBool_FromLong(state);
}

/* steps: what after_joins() acts on (stubs/_pyns_boot.pyi, Steps).  The
 * descriptors move to Python with it. */
static PyObject *steps_to_python(struct startup *s)
{
    PyObject *old_root = boot_report.old_root_fd >= 0
                             ? Py_BuildValue("(ii)", boot_report.old_root_fd, boot_report.old_mnt_fd)
                             : (Py_INCREF(Py_None), Py_None);
    PyObject *gid = s->gid >= 0 ? PyLong_FromLongLong(s->gid) : (Py_INCREF(Py_None), Py_None);
    PyObject *uid = s->uid >= 0 ? PyLong_FromLongLong(s->uid) : (Py_INCREF(Py_None), Py_None);
    PyObject *steps = Py_BuildValue(
        "{s:N,s:N,s:N,s:N,s:i,s:N,s:N,s:N,s:l}", "old_root", old_root, "inherited",
        optional_fs_string(s->inherited), "netns", optional_fs_string(s->netns), "wd", optional_fs_string(s->wd),
        "wd_fd", s->wd_fd, "gid", gid, "uid", uid, "cwd", optional_fs_string(s->cwd[0] != '\0' ? s->cwd : NULL),
        "threads", boot_report.threads_refused);
    if (steps != NULL) { /* the descriptors are Python's from here on */
        s->wd_fd = -1;
        boot_report.old_root_fd = boot_report.old_mnt_fd = -1;
    }
    return steps;
}

/* ---- the pid entry ---- */

/* Fork once, Python's way (at-fork hooks, the child's interpreter state).
 * 0 in the child, which lives in the pid namespace for children; -1 with
 * errno set when fork failed.  The parent supervises and never returns. */
static int fork_into_pid_namespace(void)
{
    struct pid_entry entry;
    if (pid_entry_prepare(&entry) < 0)
        return -1;
    PyOS_BeforeFork();
    pid_t child = fork();
    if (child == 0) {
        pid_entry_child(&entry);
        PyOS_AfterFork_Child();
        return 0;
    }
    if (child > 0)
        pid_entry_supervise(&entry, child);
    int error_errno = errno;
    PyOS_AfterFork_Parent();
    pid_entry_abort(&entry);
    errno = error_errno;
    return -1;
}

/* After the joins, when gons_pid was joined: enter it as PYNS_BOOT_PID
 * asks.  -1 when memory ran out. */
static int enter_pid_namespace(enum pid_request request)
{
    struct ns_entry *pid = &boot_report.entries[NS_PID];
    if (boot_report.error_errno != 0 || (pid->outcome != NS_JOINED && pid->outcome != NS_ALREADY_MEMBER))
        return 0;
    if (request == PID_REQUEST_CHILDREN || !boot_report.pid_outside) {
        boot_pid_mode = request == PID_REQUEST_CHILDREN ? "children" : "member";
        return 0;
    }
    if (fork_into_pid_namespace() == 0) {
        boot_pid_mode = "entered";
        return 0;
    }
    int error_errno = errno;
    boot_pid_mode = "failed";
    boot_report.message = pid_entry_fork_message(pid->path, error_errno);
    boot_report.error_errno = error_errno;
    boot_report.failed_kind = NS_PID;
    return boot_report.message != NULL ? 0 : -1;
}

/* ---- run() ---- */

/* The joins, or the refusal of a setting (read_startup), into boot_report;
 * then the pid entry.  -1 when memory ran out. */
static int join(struct startup *s, char *refusal, int error_errno)
{
    int rc, secure_mode = getauxval(AT_SECURE) != 0;
    const char *pid_setting = getenv(PID_MODE_VARIABLE);
    enum pid_request request = PID_REQUEST_ENTER;
    if (refusal == NULL && !secure_mode && set_variable(ns_kinds[NS_PID].variable) != NULL)
        request = pid_entry_request(pid_setting);
    if (refusal != NULL) {
        rc = ns_refuse(s->order, s->paths, error_errno, -1, refusal, &boot_report);
    } else if (request == PID_REQUEST_INVALID) {
        rc = ns_refuse(s->order, s->paths, EINVAL, NS_PID, pid_entry_invalid_message(pid_setting), &boot_report);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = ns_run_keep_root(s->order, s->paths, secure_mode, s->keep_imports, &boot_report);
        Py_END_ALLOW_THREADS
    }
    if (rc < 0)
        return -1;
    return enter_pid_namespace(request);
}

/* gons_netns after its join: the view of ip netns exec, here in C; a view
 * that cannot be made is the start's failure.  -1 when memory ran out. */
static int view_netns(struct startup *s)
{
    int error_errno;
    char *message = netns_view_at_startup(s->netns, &error_errno);
    if (message == NULL)
        return 0;
    if (message[0] == '\0')
        return (free(message), -1);
    boot_report.error_errno = error_errno;
    boot_report.message = message;
    return 0;
}

/* The one Python name C calls: pyns_boot.hook.after_joins, or NULL. */
static PyObject *python_entry(void)
{
    PyObject *hook = PyImport_ImportModule(ENTRY_MODULE);
    PyObject *entry = hook != NULL ? PyObject_GetAttrString(hook, ENTRY_NAME) : NULL;
    Py_XDECREF(hook);
    return entry;
}

/* after_joins(report, steps).  entry was imported before the joins when
 * there were Python steps (after a mnt join the package may be out of reach
 * until imports are kept); for a failure alone it is imported now. */
static PyObject *call_python(PyObject *entry, struct startup *s)
{
    const char *message = boot_report.message != NULL ? boot_report.message : "pyns_boot: failed";
    if (entry == NULL)
        entry = python_entry();
    PyObject *report = entry != NULL ? report_to_python(&boot_report) : NULL;
    PyObject *steps = report != NULL ? steps_to_python(s) : NULL;
    PyObject *result = steps != NULL ? PyObject_CallFunctionObjArgs(entry, report, steps, NULL) : NULL;
    Py_XDECREF(steps);
    Py_XDECREF(report);
    Py_XDECREF(entry);
    if (result != NULL)
        return result;
    if (boot_report.error_errno == 0 && !python_steps(s) && PyErr_ExceptionMatches(PyExc_ImportError)) {
        PyErr_Clear(); /* only a policy value to complain about, and nobody to say it */
        boot_policy = policy_in_force(s->policy_value);
        Py_RETURN_NONE;
    }
    if (boot_report.error_errno == 0)
        return NULL; /* an exception after a success: site.py shows it */
    PyErr_Clear();
    boot_policy = last_resort(message);
    Py_RETURN_NONE;
}

/* run() after its decision to act: the joins, the variables removed, then
 * Python when it has work.  s is released by the caller. */
static PyObject *run_once(struct startup *s)
{
    int error_errno;
    char *refusal = read_startup(s, &error_errno);
    if (refusal != NULL && refusal[0] == '\0') {
        free(refusal);
        return PyErr_NoMemory();
    }
    PyObject *entry = NULL;
    if (refusal == NULL && python_steps(s) && (entry = python_entry()) == NULL) {
        PyErr_Clear();
        boot_policy = last_resort("pyns_boot: cannot import " ENTRY_MODULE ", which takes the steps after the joins "
                                  "(keep imports after gons_mnt, gons_netns, " WD_VARIABLE ", " SETGID_VARIABLE
                                  ", " SETUID_VARIABLE "); no namespace was joined: reinstall pyns_boot");
        Py_RETURN_NONE;
    }
    if (join(s, refusal, error_errno) < 0) {
        Py_XDECREF(entry);
        return PyErr_NoMemory();
    }
    if (remove_variables() < 0) {
        Py_XDECREF(entry);
        return NULL;
    }
    if (s->netns != NULL && boot_report.error_errno == 0 && view_netns(s) < 0) {
        Py_XDECREF(entry);
        return PyErr_NoMemory();
    }
    if (boot_report.error_errno != 0 || entry != NULL || policy_not_understood(s))
        return call_python(entry, s);
    boot_policy = policy_in_force(s->policy_value);
    Py_RETURN_NONE;
}

static PyObject *setns_run(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    if (boot_done || !any_variable_set() || !in_main_interpreter())
        Py_RETURN_NONE;
    boot_done = 1;
    static struct startup s;
    PyObject *result = run_once(&s);
    if (s.wd_fd >= 0)
        close(s.wd_fd); /* not handed to Python */
    release_startup(&s);
    return result;
}

static PyObject *setns_report(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    if (!boot_done)
        Py_RETURN_NONE;
    return report_to_python(&boot_report);
}

static PyObject *setns_policy(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return optional_fs_string(boot_policy);
}

static PyObject *setns_pid_mode(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return optional_fs_string(boot_pid_mode);
}

/* enter_pid(path): fork once; the caller goes on as the child, in the pid
 * namespace for children, while the parent supervises it. */
static PyObject *setns_enter_pid(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *path_bytes;
    if (!PyArg_ParseTuple(args, "O&:enter_pid", PyUnicode_FSConverter, &path_bytes))
        return NULL;
    PyObject *result = NULL;
    const char *path = PyBytes_AsString(path_bytes);
    if (path != NULL && fork_into_pid_namespace() == 0) {
        result = (Py_INCREF(Py_None), Py_None);
    } else if (path != NULL) {
        int error_errno = errno;
        raise_message(PyExc_OSError, error_errno, pid_entry_fork_message(path, error_errno));
    }
    Py_DECREF(path_bytes);
    return result;
}

PyMethodDef startup_methods[] = {
    {"run", setns_run, METH_NOARGS,
     "run(): the start-up hook (pyns_boot.pth): once per process, in the\n"
     "main interpreter, join what the gons_* variables name, remove them,\n"
     "and call pyns_boot.hook.after_joins() when Python has work."},
    {"report", setns_report, METH_NOARGS, "report() -> what run() did (a Report), or None if it did not act."},
    {"policy", setns_policy, METH_NOARGS, "policy() -> the failure policy run() applied in C, or None."},
    {"pid_mode", setns_pid_mode, METH_NOARGS,
     "pid_mode() -> after gons_pid was joined: \"entered\" (the hook forked;\n"
     "its parent supervises), \"member\", \"children\" (PYNS_BOOT_PID=children),\n"
     "\"failed\" (the fork failed); else None."},
    {"enter_pid", setns_enter_pid, METH_VARARGS,
     "enter_pid(path): fork once after apply() joined the pid namespace path\n"
     "names; returns in the child while the parent, in C, forwards signals\n"
     "and exits as the child exits.  OSError when fork failed."},
    {"in_main_interpreter", setns_in_main_interpreter, METH_NOARGS,
     "in_main_interpreter() -> True, False, or None when C cannot tell."},
    {NULL, NULL, 0, NULL},
};

/* module.name = a tuple of the count strings of names. */
static int add_names(PyObject *module, const char *name, const char *const *names, int count)
{
    PyObject *tuple = PyTuple_New(count);
    for (int i = 0; tuple != NULL && i < count; i++) {
        PyObject *text = PyUnicode_FromString(names[i]);
        if (text == NULL || PyTuple_SetItem(tuple, i, text) < 0)
            Py_CLEAR(tuple);
    }
    if (tuple == NULL || PyModule_AddObject(module, name, tuple) < 0) {
        Py_XDECREF(tuple);
        return -1;
    }
    return 0;
}

int startup_add_constants(PyObject *module)
{
    const char *triggers[NS_KIND_COUNT + 2];
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        triggers[kind] = ns_kinds[kind].variable;
    triggers[NS_KIND_COUNT] = NS_ORDER_VARIABLE;
    triggers[NS_KIND_COUNT + 1] = NETNS_VARIABLE;
    if (add_names(module, "TRIGGER_VARIABLES", triggers, NS_KIND_COUNT + 2) < 0 ||
        add_names(module, "AFTER_JOINS_VARIABLES", after_joins_variables, AFTER_JOINS_COUNT) < 0)
        return -1;
    PyObject *entry = Py_BuildValue("(ss)", ENTRY_MODULE, ENTRY_NAME);
    if (entry == NULL || PyModule_AddObject(module, "PYTHON_ENTRY", entry) < 0) {
        Py_XDECREF(entry);
        return -1;
    }
    return PyModule_AddIntConstant(module, "STDERR_TIMEOUT_MS", STDERR_TIMEOUT_MS);
}
