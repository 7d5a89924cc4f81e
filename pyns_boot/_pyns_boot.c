/*
 * _pyns_boot: the C helper, a top-level extension module beside
 * pyns_boot.pth.  It wraps the Python-free core (_setns.c: ns_parse_order,
 * ns_plan, ns_run and its steps open_reference, is_member, join_one) and the
 * pid entry (_pid_entry.c) for Python:
 *   run()    the common start-up path of pyns_boot.pth: join from the
 *            environment, remove the variables, hand a failure to
 *            pyns_boot.hook.report_failure (its policy), enter gons_pid
 *   boot()   the same join for pyns_boot.hook.run(), the rare start-up paths
 *   apply()  the join on explicit values, for callers that manage their own
 *            processes (the workers' children, the pyns-boot command)
 *   report() what this process's one start-up join did, for status()
 *   plan(), check_reference(), kinds()
 *            the core's own decisions for the rest of the package: the
 *            steps of an order (ns_plan), the reference check of a join
 *            (ns_check_reference), the namespace table (ns_kinds), so that
 *            each is written once and says the same everywhere
 * The contract is docs/env-interface.md.
 */
#define _GNU_SOURCE 1 /* exactly as pyconfig.h of 3.8-3.10 defines it: no redefinition error */
/* Python.h before any system header (_pid_entry.h has some), as the C API
 * asks: a newer glibc's features.h (zig's, for the release wheels) sets
 * other _POSIX_C_SOURCE/_XOPEN_SOURCE values than pyconfig.h would redefine. */
#include <Python.h>

#include "_setns.h"
#include "_pid_entry.h"
#include "_host_exec.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The outcome of the one boot() of this process.  It is plain C data so
 * that every interpreter of the process (subinterpreters included) sees the
 * same record and builds its own Python objects from it. */
static int boot_done;
static struct ns_report boot_report;
/* The failure policy run() applied ("exit", "warn", "ignore"), or NULL. */
static const char *boot_policy;
/* What became of the program and the pid namespace gons_pid names:
 * "entered", "member", "children", "failed", or NULL (see pid_mode()). */
static const char *boot_pid_mode;

static PyObject *optional_fs_string(const char *text)
{
    if (text == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(text);
}

/* The report as Python sees it (stubs/_pyns_boot.pyi, Report): a dict
 * {"namespaces", "ok", "message", "errno", "failed", "order"}, where
 * "namespaces" maps each type, in TYPES order, to its entry {"path",
 * "outcome", "early"}.  Py_BuildValue's "N" takes the reference over, also
 * when it fails. */
static PyObject *report_to_python(const struct ns_report *report)
{
    PyObject *namespaces = PyDict_New();
    for (int kind = 0; namespaces != NULL && kind < NS_KIND_COUNT; kind++) {
        const struct ns_entry *entry = &report->entries[kind];
        PyObject *item = Py_BuildValue(
            "{s:N,s:s,s:O}", "path", optional_fs_string(entry->path),
            "outcome", ns_outcome_names[entry->outcome], "early",
            entry->early ? Py_True : Py_False);
        if (item == NULL ||
            PyDict_SetItemString(namespaces, ns_kinds[kind].name, item) < 0)
            Py_CLEAR(namespaces);
        Py_XDECREF(item);
    }
    if (namespaces == NULL)
        return NULL;
    int failed = report->failed_kind;
    return Py_BuildValue(
        "{s:N,s:O,s:N,s:i,s:z,s:N}", "namespaces", namespaces, "ok",
        report->error_errno == 0 ? Py_True : Py_False, "message",
        optional_fs_string(report->message), "errno", report->error_errno,
        "failed", failed >= 0 ? ns_kinds[failed].name : NULL, "order",
        optional_fs_string(report->order));
}

/* A join refused for other threads: add to the message which .pth files
 * ran before pyns_boot.pth (pyns_boot._sitedirs.threads_note; no switch
 * happened, so the package imports as usual).  If that fails, the message
 * stays as it is: it names the thread count already. */
static void add_thread_note(struct ns_report *report)
{
    PyObject *module = PyImport_ImportModule("pyns_boot._sitedirs");
    PyObject *note = module != NULL
                         ? PyObject_CallMethod(module, "threads_note", NULL)
                         : NULL;
    PyObject *bytes = note != NULL ? PyUnicode_EncodeFSDefault(note) : NULL;
    const char *text = bytes != NULL ? PyBytes_AsString(bytes) : NULL;
    char *message;
    if (text != NULL && asprintf(&message, "%s%s", report->message, text) >= 0) {
        free(report->message);
        report->message = message;
    }
    Py_XDECREF(bytes);
    Py_XDECREF(note);
    Py_XDECREF(module);
    PyErr_Clear();
}

/* Fork once, Python's way (at-fork hooks, the child's interpreter state).
 * Returns 0 in the child, which lives in the pid namespace for children;
 * -1 with errno set when fork failed.  The parent becomes the supervisor
 * and never returns. */
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

/* After a successful run that joined gons_pid: enter it as PYNS_BOOT_PID
 * asks.  -1 with MemoryError set when memory ran out. */
static int enter_pid_namespace(enum pid_request request)
{
    struct ns_entry *pid = &boot_report.entries[NS_PID];
    if (boot_report.error_errno != 0 ||
        (pid->outcome != NS_JOINED && pid->outcome != NS_ALREADY_MEMBER))
        return 0;
    if (request == PID_REQUEST_CHILDREN) {
        boot_pid_mode = "children";
        return 0;
    }
    if (!boot_report.pid_outside) {
        boot_pid_mode = "member";
        return 0;
    }
    if (fork_into_pid_namespace() == 0) {
        boot_pid_mode = "entered";
        return 0;
    }
    int error_errno = errno;
    boot_pid_mode = "failed";
    boot_report.message = pid_entry_fork_message(pid->path, error_errno);
    if (boot_report.message == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    boot_report.error_errno = error_errno;
    boot_report.failed_kind = NS_PID;
    return 0;
}

/* The one run of this process, from the C environment, into boot_report,
 * and the pid entry after it.  -1 with MemoryError set when memory ran
 * out. */
static int boot_from_environment(int keep_old_root)
{
    const char *paths[NS_KIND_COUNT];
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        paths[kind] = getenv(ns_kinds[kind].variable);
    const char *order = getenv(NS_ORDER_VARIABLE);
    int secure_mode = getauxval(AT_SECURE) != 0;
    const char *pid_setting = getenv(PID_MODE_VARIABLE);
    enum pid_request request = PID_REQUEST_ENTER;
    int rc;

    boot_done = 1;
    if (!secure_mode && paths[NS_PID] != NULL && paths[NS_PID][0] != '\0')
        request = pid_entry_request(pid_setting);
    if (request == PID_REQUEST_INVALID) {
        rc = ns_refuse(order, paths, EINVAL, NS_PID,
                       pid_entry_invalid_message(pid_setting), &boot_report);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = ns_run_keep_root(order, paths, secure_mode, keep_old_root,
                              &boot_report);
        Py_END_ALLOW_THREADS
    }
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (boot_report.threads_refused > 0 && boot_report.message != NULL)
        add_thread_note(&boot_report);
    return enter_pid_namespace(request);
}

static PyObject *setns_boot(PyObject *Py_UNUSED(module), PyObject *args)
{
    int keep_old_root = 0;
    if (!PyArg_ParseTuple(args, "|p:boot", &keep_old_root))
        return NULL;
    if (boot_done)
        Py_RETURN_NONE;
    if (boot_from_environment(keep_old_root) < 0)
        return NULL;
    return report_to_python(&boot_report);
}

static PyObject *setns_report(PyObject *Py_UNUSED(module),
                              PyObject *Py_UNUSED(unused))
{
    if (!boot_done)
        Py_RETURN_NONE;
    return report_to_python(&boot_report);
}

/* take_old_root() -> (root fd, mount namespace fd) or None: what boot(True)
 * kept of the original root; the caller owns both from then on (later
 * calls: None). */
static PyObject *setns_take_old_root(PyObject *Py_UNUSED(module),
                                     PyObject *Py_UNUSED(unused))
{
    if (!boot_done || boot_report.old_root_fd < 0)
        Py_RETURN_NONE;
    PyObject *fds = Py_BuildValue("(ii)", boot_report.old_root_fd,
                                  boot_report.old_mnt_fd);
    if (fds != NULL) {
        boot_report.old_root_fd = -1;
        boot_report.old_mnt_fd = -1;
    }
    return fds;
}

/* The arguments of apply() and plan(), converted for the core: the order
 * (NULL for None) and one path per kind (NULL for None), in TYPES order. */
struct request {
    PyObject *order_bytes;
    PyObject *path_bytes[NS_KIND_COUNT];
    const char *order;
    const char *paths[NS_KIND_COUNT];
};

static void request_release(struct request *request)
{
    Py_XDECREF(request->order_bytes);
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        Py_XDECREF(request->path_bytes[kind]);
}

/* An O& converter: None stays NULL, anything else becomes bytes as
 * os.fsencode makes them (PyUnicode_FSConverter). */
static int optional_path(PyObject *object, void *bytes)
{
    return object == Py_None || PyUnicode_FSConverter(object, bytes);
}

/* Bytes a converter made, as a string for the core (NULL for None).  The
 * converter made a bytes object, so PyBytes_AsString cannot fail. */
static const char *bytes_text(PyObject *bytes)
{
    return bytes != NULL ? PyBytes_AsString(bytes) : NULL;
}

/* args: (order, paths), format "O&O:name"; order None or a path-like
 * string, paths a sequence of NS_KIND_COUNT items, each a path (str or
 * bytes, os.fsencode-able) or None.  0, or -1 with an error set; release
 * the request either way. */
static int request_from_args(PyObject *args, const char *format,
                             struct request *request)
{
    PyObject *path_sequence;
    memset(request, 0, sizeof *request);
    if (!PyArg_ParseTuple(args, format, optional_path, &request->order_bytes,
                          &path_sequence))
        return -1;
    request->order = bytes_text(request->order_bytes);
    if (!PySequence_Check(path_sequence) ||
        PySequence_Size(path_sequence) != NS_KIND_COUNT) {
        PyErr_Format(PyExc_TypeError,
                     "%s() paths must be a sequence of %d items",
                     strchr(format, ':') + 1, NS_KIND_COUNT);
        return -1;
    }
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        PyObject *item = PySequence_GetItem(path_sequence, kind);
        int converted =
            item != NULL && optional_path(item, &request->path_bytes[kind]);
        Py_XDECREF(item);
        if (!converted)
            return -1;
        request->paths[kind] = bytes_text(request->path_bytes[kind]);
    }
    return 0;
}

/* apply(order, paths): the sequence on explicit values (request_from_args). */
static PyObject *setns_apply(PyObject *Py_UNUSED(module), PyObject *args)
{
    struct request request;
    PyObject *result = NULL;
    if (request_from_args(args, "O&O:apply", &request) < 0)
        goto done;

    struct ns_report report;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ns_run(request.order, request.paths, 0, &report);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = report_to_python(&report);
    ns_report_free(&report);

done:
    request_release(&request);
    return result;
}

/* Raise type(message), or OSError(error_errno, message) when type is
 * OSError, taking message over (malloc'd; NULL: memory ran out). */
static PyObject *raise_message(PyObject *type, int error_errno, char *message)
{
    if (message == NULL)
        return PyErr_NoMemory();
    PyObject *text = PyUnicode_DecodeFSDefault(message);
    free(message);
    PyObject *args = type == PyExc_OSError
                         ? Py_BuildValue("(iN)", error_errno, text)
                         : text;
    if (args != NULL) {
        PyErr_SetObject(type, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* plan(order, paths) -> ((type, early), ...): ns_plan, the decision the
 * hook's run takes before it opens anything (the effective order, every set
 * path listed in it), on explicit values (request_from_args); ValueError
 * with the hook's message.  No system call. */
static PyObject *setns_plan(PyObject *Py_UNUSED(module), PyObject *args)
{
    struct request request;
    struct ns_plan plan;
    PyObject *result = NULL;
    if (request_from_args(args, "O&O:plan", &request) < 0)
        goto done;
    if (ns_plan(request.order, request.paths, 0, &plan) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (plan.message != NULL) {
        raise_message(PyExc_ValueError, 0, plan.message);
        plan.message = NULL;
        goto done;
    }
    result = PyTuple_New(plan.count);
    for (int i = 0; result != NULL && i < plan.count; i++) {
        PyObject *step = Py_BuildValue(
            "(sO)", ns_kinds[plan.steps[i].kind].name,
            plan.steps[i].early ? Py_True : Py_False);
        if (step == NULL || PyTuple_SetItem(result, i, step) < 0)
            Py_CLEAR(result);
    }
done:
    request_release(&request);
    return result;
}

/* check_reference(type, path) -> None: path opens as a namespace of type,
 * checked exactly as a join checks it; else OSError(errno, the hook's
 * message).  The descriptor is closed on every path. */
static PyObject *setns_check_reference(PyObject *Py_UNUSED(module),
                                       PyObject *args)
{
    const char *type;
    PyObject *path_bytes;
    if (!PyArg_ParseTuple(args, "sO&:check_reference", &type,
                          PyUnicode_FSConverter, &path_bytes))
        return NULL;
    int kind = ns_kind_by_name(type, strlen(type));
    const char *path = PyBytes_AsString(path_bytes);
    PyObject *result = NULL;
    if (kind < 0) {
        PyErr_Format(PyExc_ValueError, "unknown namespace type \"%s\"", type);
    } else if (path != NULL) {
        int error_errno = 0, rc;
        char *message = NULL;
        Py_BEGIN_ALLOW_THREADS
        rc = ns_check_reference(kind, path, &error_errno, &message);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            PyErr_NoMemory();
        else if (message == NULL)
            result = (Py_INCREF(Py_None), Py_None);
        else
            raise_message(PyExc_OSError, error_errno, message);
    }
    Py_DECREF(path_bytes);
    return result;
}

/* ---- run(): the start-up hook's common path, without importing Python ---- */

#define POLICY_VARIABLE "PYNS_BOOT_ON_ERROR"
#define EXIT_STATUS 125

typedef PyInterpreterState *(*interpreter_getter)(void);

/* 1 in the main interpreter, 0 in a subinterpreter, -1 when it cannot be
 * told from C.  The abi3 headers of 3.8 declare neither function (3.8 has
 * _PyInterpreterState_Get, 3.9+ PyInterpreterState_Get), so look them up in
 * the running interpreter; a Python embedded with RTLD_LOCAL hides them. */
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

static PyObject *setns_in_main_interpreter(PyObject *Py_UNUSED(module),
                                           PyObject *Py_UNUSED(unused))
{
    int state = main_interpreter_state();
    if (state < 0)
        Py_RETURN_NONE;
    return PyBool_FromLong(state);
}

/* The hook in Python (pyns_boot.hook.run) for what run() leaves to it. */
static PyObject *run_python_hook(void)
{
    PyObject *hook = PyImport_ImportModule("pyns_boot.hook");
    if (hook == NULL)
        return NULL;
    PyObject *result = PyObject_CallMethod(hook, "run", NULL);
    Py_DECREF(hook);
    return result;
}

static int any_variable_set(void)
{
    if (getenv(NS_ORDER_VARIABLE) != NULL)
        return 1;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        if (getenv(ns_kinds[kind].variable) != NULL)
            return 1;
    return 0;
}

/* The variables of the steps around the joins that pyns_boot._after_joins takes
 * (exported as FINISH_VARIABLES; hook.py keeps the one import-free copy,
 * tests/test_startup_files.py checks both): run() leaves them to
 * pyns_boot.hook.run(). */
static const char *const finish_variables[] = {
    "gons_netns", "PYNS_BOOT_WD", "PYNS_BOOT_SETGID", "PYNS_BOOT_SETUID"};
#define FINISH_VARIABLE_COUNT \
    ((int)(sizeof finish_variables / sizeof finish_variables[0]))

static int finish_requested(void)
{
    for (int i = 0; i < FINISH_VARIABLE_COUNT; i++) {
        const char *value = getenv(finish_variables[i]);
        if (value != NULL && value[0] != '\0')
            return 1;
    }
    return 0;
}

/* os.environ.pop(name, None) for each set variable; os.environ's
 * __delitem__ also removes it from the C environment. */
static int remove_variables(void)
{
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL)
        return -1;
    PyObject *os_environ = PyObject_GetAttrString(os, "environ");
    Py_DECREF(os);
    if (os_environ == NULL)
        return -1;
    int rc = 0;
    for (int kind = 0; kind <= NS_KIND_COUNT && rc == 0; kind++) {
        const char *name = kind < NS_KIND_COUNT ? ns_kinds[kind].variable
                                                : NS_ORDER_VARIABLE;
        if (getenv(name) == NULL)
            continue;
        PyObject *removed = PyObject_CallMethod(os_environ, "pop", "sO", name,
                                                Py_None);
        if (removed == NULL)
            rc = -1;
        Py_XDECREF(removed);
        if (rc == 0 && unsetenv(name) != 0)
            rc = (PyErr_SetFromErrno(PyExc_OSError), -1);
    }
    Py_DECREF(os_environ);
    return rc;
}

/* How long a failure message may wait for room on stderr, in all. */
#define STDERR_TIMEOUT_MS 1000

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
 * takes without blocking.  Returns 1 when all of it got out, 0 when not
 * (no room in time, or nowhere to report to). */
static int write_bounded(int fd, const char *text, size_t length)
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
        ssize_t written = write(fd, text,
                                length < PIPE_BUF ? length : PIPE_BUF);
        if (written < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (written <= 0)
            return 0;
        text += written;
        length -= (size_t)written;
    }
    return 1;
}

/* Whatever sys.stderr buffered goes out before the raw message. */
static void flush_python_stderr(void)
{
    PyObject *stream = PySys_GetObject("stderr"); /* borrowed */
    if (stream != NULL && stream != Py_None) {
        PyObject *result = PyObject_CallMethod(stream, "flush", NULL);
        Py_XDECREF(result);
    }
    PyErr_Clear();
}

/* The policy a PYNS_BOOT_ON_ERROR value means, for the C paths below:
 * "warn" or "ignore" when it is exactly that, else "exit" (the values and
 * the complaint about any other one live in pyns_boot._policy). */
static const char *policy_in_force(const char *value)
{
    if (value != NULL && strcmp(value, "warn") == 0)
        return "warn";
    if (value != NULL && strcmp(value, "ignore") == 0)
        return "ignore";
    return "exit";
}

/* The last resort, when the pyns_boot package cannot be imported (or its
 * policy failed) after a failed join, as after half an uninstall: the
 * join's message alone, as one line in one bounded write (write_bounded),
 * then exit 125 unless PYNS_BOOT_ON_ERROR is exactly
 * "warn" (carry on) or "ignore" (carry on, say nothing).  No hint, no
 * complaint about a value not understood (it acts as exit), no exception
 * for the pyns-boot command: those are pyns_boot._policy's, which is not
 * there (docs/hardening.md). */
static PyObject *last_resort(const char *message)
{
    boot_policy = policy_in_force(getenv(POLICY_VARIABLE));
    if (boot_policy[0] == 'i')
        Py_RETURN_NONE;
    size_t length = strlen(message);
    char *line = malloc(length + 1); /* one write: the line arrives whole */
    flush_python_stderr();
    if (line != NULL) {
        memcpy(line, message, length);
        line[length] = '\n';
        (void)write_bounded(2, line, length + 1);
        free(line);
    } else {
        /* out of memory: without its newline */
        (void)write_bounded(2, message, length);
    }
    if (boot_policy[0] == 'e')
        _exit(EXIT_STATUS);
    Py_RETURN_NONE;
}

/* ---- run()'s reports: a failure, a policy value not understood ---- */

/* A failed run(): pyns_boot.hook.report_failure adds the one hint (the
 * logic lives in pyns_boot._hints) and applies the policy
 * (pyns_boot._policy); the last resort when that cannot be done. */
static PyObject *report_failure(void)
{
    const char *message = boot_report.message != NULL ? boot_report.message
                                                      : "pyns_boot: failed";
    PyObject *hook = PyImport_ImportModule("pyns_boot.hook");
    PyObject *report = hook != NULL ? report_to_python(&boot_report) : NULL;
    PyObject *result = report != NULL ? PyObject_CallMethod(
                                            hook, "report_failure", "(O)", report)
                                      : NULL;
    Py_XDECREF(report);
    Py_XDECREF(hook);
    if (result != NULL)
        return result;
    PyErr_Clear();
    return last_resort(message);
}

/* After a successful run(): record the policy in force without importing
 * anything; a value that is not understood (a rare mistake) is for
 * pyns_boot._policy.note() to say.  Without the package nothing is said:
 * the join succeeded, and the policy only matters on a failure. */
static void note_policy(void)
{
    const char *value = getenv(POLICY_VARIABLE);
    boot_policy = policy_in_force(value);
    if (value == NULL || value[0] == '\0' || strcmp(value, boot_policy) == 0)
        return;
    PyObject *policy = PyImport_ImportModule("pyns_boot._policy");
    PyObject *result = policy != NULL ? PyObject_CallMethod(policy, "note", NULL)
                                      : NULL;
    Py_XDECREF(result);
    Py_XDECREF(policy);
    PyErr_Clear();
}

/* run(): what pyns_boot.hook.run() does, for every case but a mnt join
 * (keep-imports and its setting) and a Python whose interpreters C cannot
 * tell apart: those go to pyns_boot.hook.run(). */
static PyObject *setns_run(PyObject *Py_UNUSED(module),
                           PyObject *Py_UNUSED(unused))
{
    if (boot_done || (!any_variable_set() && getenv("gons_netns") == NULL))
        Py_RETURN_NONE;
    int is_main = main_interpreter_state();
    if (is_main == 0)
        Py_RETURN_NONE;
    const char *mnt_path = getenv("gons_mnt");
    if (is_main < 0 || (mnt_path != NULL && mnt_path[0] != '\0') ||
        finish_requested())
        return run_python_hook();
    if (boot_from_environment(0) < 0)
        return NULL;
    if (remove_variables() < 0)
        return NULL;
    if (boot_report.error_errno != 0)
        return report_failure();
    note_policy();
    Py_RETURN_NONE;
}

/* write_stderr(data) -> True when all of data reached fd 2 (bounded: see
 * write_bounded); what pyns_boot._policy writes the start-up messages with. */
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

/* pid_mode() -> what became of the program and gons_pid, or None. */
static PyObject *setns_pid_mode(PyObject *Py_UNUSED(module),
                                PyObject *Py_UNUSED(unused))
{
    return optional_fs_string(boot_pid_mode);
}

/* enter_pid(path): fork once; the caller continues as the child, in the
 * pid namespace for children, and the parent supervises it (never
 * returns).  OSError(errno, message naming path) when fork failed. */
static PyObject *setns_enter_pid(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *path_bytes;
    if (!PyArg_ParseTuple(args, "O&:enter_pid", PyUnicode_FSConverter,
                          &path_bytes))
        return NULL;
    PyObject *result = NULL;
    const char *path = PyBytes_AsString(path_bytes);
    if (path != NULL && fork_into_pid_namespace() == 0) {
        result = (Py_INCREF(Py_None), Py_None);
    } else if (path != NULL) {
        int error_errno = errno;
        raise_message(PyExc_OSError, error_errno,
                      pid_entry_fork_message(path, error_errno));
    }
    Py_DECREF(path_bytes);
    return result;
}

/* policy() -> the failure policy run() applied, or None. */
static PyObject *setns_policy(PyObject *Py_UNUSED(module),
                              PyObject *Py_UNUSED(unused))
{
    return optional_fs_string(boot_policy);
}

/* preload(path, flags) -> None, or dlerror()'s message: dlopen a shared
 * library (pyns_boot._elfdeps, after a mnt join with keep-imports) so that
 * an extension module loaded next binds to it by its soname.  The handle is
 * kept on purpose: the library stays for the life of the process, as the
 * extension module that needs it does. */
static PyObject *setns_preload(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *path = NULL;
    int flags;
    if (!PyArg_ParseTuple(args, "O&i:preload", PyUnicode_FSConverter, &path,
                          &flags))
        return NULL;
    const char *name = PyBytes_AsString(path);
    if (name == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    dlerror(); /* forget an earlier message */
    void *handle = dlopen(name, flags);
    Py_DECREF(path);
    if (handle != NULL)
        Py_RETURN_NONE;
    const char *message = dlerror();
    return PyUnicode_DecodeFSDefault(message != NULL ? message
                                                     : "dlopen failed");
}

static int add_loaded_name(struct dl_phdr_info *info, size_t Py_UNUSED(size),
                           void *data)
{
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
        return 0; /* the executable (and a vDSO without a name) */
    PyObject *name = PyUnicode_DecodeFSDefault(info->dlpi_name);
    if (name == NULL)
        return 1;
    int failed = PyList_Append((PyObject *)data, name) < 0;
    Py_DECREF(name);
    return failed;
}

/* loaded() -> [path, ...]: the shared objects of the process (dl_iterate_phdr). */
static PyObject *setns_loaded(PyObject *Py_UNUSED(module),
                              PyObject *Py_UNUSED(unused))
{
    PyObject *names = PyList_New(0);
    if (names == NULL)
        return NULL;
    if (dl_iterate_phdr(add_loaded_name, names) != 0) {
        Py_DECREF(names);
        return NULL;
    }
    return names;
}

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

/* ---- kinds(): the namespace table (_setns.c ns_kinds) for Python ---- */

/* compile_program(source, filename) -> code: a program's source compiled as
 * python compiles the script it runs (Py_CompileString).  builtin compile()
 * first makes the ast module's types, some 11 million instructions on 3.13,
 * which a python start never pays (pyns-boot run: pyns_boot._run_program). */
static PyObject *setns_compile_program(PyObject *Py_UNUSED(module),
                                       PyObject *args)
{
    const char *source;
    PyObject *filename_bytes;
    if (!PyArg_ParseTuple(args, "yO&:compile_program", &source,
                          PyUnicode_FSConverter, &filename_bytes))
        return NULL;
    const char *filename = PyBytes_AsString(filename_bytes);
    PyObject *code = filename != NULL
                         ? Py_CompileString(source, filename, Py_file_input)
                         : NULL;
    Py_DECREF(filename_bytes);
    return code;
}

static PyStructSequence_Field kind_fields[] = {
    {"name", "the type's name in gons_order: \"net\""},
    {"variable", "the variable that names its reference: \"gons_net\""},
    {"clone_flag", "CLONE_NEW*: setns()'s nstype, NS_GET_NSTYPE's answer"},
    {"self_links", "the /proc/self/ns links that must all match a reference "
                   "for the process to be a member of it already"},
    {"single_threaded", "True when the kernel lets only a single-threaded "
                        "process join"},
    {NULL, NULL},
};

static PyStructSequence_Desc kind_desc = {
    "_pyns_boot.Kind",
    "One namespace type of the C helper's table (_pyns_boot.kinds()).",
    kind_fields,
    5,
};

static PyObject *kind_to_python(PyTypeObject *type, const struct ns_kind *kind)
{
    PyObject *record = PyStructSequence_New(type);
    if (record == NULL)
        return NULL;
    const char *const *links = kind->self_links;
    PyObject *values[5] = {
        PyUnicode_FromString(kind->name),
        PyUnicode_FromString(kind->variable),
        PyLong_FromLong(kind->clone_flag),
        links[1] != NULL ? Py_BuildValue("(ss)", links[0], links[1])
                         : Py_BuildValue("(s)", links[0]),
        PyBool_FromLong(kind->single_threaded),
    };
    int failed = 0;
    for (int i = 0; i < 5; i++) {
        if (values[i] == NULL)
            failed = 1;
        else
            PyStructSequence_SetItem(record, i, values[i]); /* steals */
    }
    if (failed) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

/* kinds() -> (Kind, ...) in TYPES order: built on each call, so that the
 * module holds nothing for it (its import is start-up time of every hooked
 * process); callers keep the result. */
static PyObject *setns_kinds(PyObject *Py_UNUSED(module),
                             PyObject *Py_UNUSED(unused))
{
    PyTypeObject *type = PyStructSequence_NewType(&kind_desc);
    if (type == NULL)
        return NULL;
    PyObject *kinds = PyTuple_New(NS_KIND_COUNT);
    for (int kind = 0; kinds != NULL && kind < NS_KIND_COUNT; kind++) {
        PyObject *record = kind_to_python(type, &ns_kinds[kind]);
        if (record == NULL || PyTuple_SetItem(kinds, kind, record) < 0)
            Py_CLEAR(kinds);
    }
    Py_DECREF((PyObject *)type);
    return kinds;
}

static PyMethodDef setns_methods[] = {
    {"netns_view", setns_netns_view, METH_VARARGS,
     "netns_view(name) -> [failed bind, ...]: after joining /run/netns/NAME,\n"
     "what ip netns exec adds: a private mount namespace, the namespace's\n"
     "sysfs on /sys, /etc/netns/NAME/* bound over /etc.  OSError when the\n"
     "mount namespace or /sys cannot be made."},
    {"run", setns_run, METH_NOARGS,
     "run(): the start-up hook (pyns_boot.pth): join the namespaces the\n"
     "gons_* variables name, remove them, apply PYNS_BOOT_ON_ERROR; a mnt\n"
     "join goes to pyns_boot.hook.run().  Once per process, main\n"
     "interpreter only."},
    {"write_stderr", setns_write_stderr, METH_O,
     "write_stderr(data) -> True when all of the bytes reached fd 2; waits\n"
     "at most STDERR_TIMEOUT_MS for room (a full pipe nobody reads)."},
    {"pid_mode", setns_pid_mode, METH_NOARGS,
     "pid_mode() -> after gons_pid was joined: \"entered\" (the hook forked;\n"
     "this process lives in the namespace, its parent supervises it),\n"
     "\"member\" (it lived there already), \"children\" (PYNS_BOOT_PID=children:\n"
     "only its children land there), \"failed\" (the fork failed); else None."},
    {"enter_pid", setns_enter_pid, METH_VARARGS,
     "enter_pid(path): fork once after apply() joined the pid namespace path\n"
     "names; returns in\n"
     "the child (inside it) while the parent, in C, forwards signals to it\n"
     "and exits as it exits.  Single-threaded callers only.  OSError when\n"
     "fork failed (ENOMEM: the namespace's init has exited)."},
    {"policy", setns_policy, METH_NOARGS,
     "policy() -> the failure policy run() applied, or None."},
    {"in_main_interpreter", setns_in_main_interpreter, METH_NOARGS,
     "in_main_interpreter() -> True, False, or None when C cannot tell."},
    {"plan", setns_plan, METH_VARARGS,
     "plan(order, paths) -> ((type, early), ...): the steps the hook would\n"
     "take for this order (None: the default) and these paths (TYPES order,\n"
     "None for unset), decided without touching anything; ValueError with\n"
     "the hook's message (an order it cannot parse, a set path not listed)."},
    {"check_reference", setns_check_reference, METH_VARARGS,
     "check_reference(type, path): None when path opens as a namespace of\n"
     "type, checked as a join checks it; else OSError(errno, the hook's\n"
     "message).  No descriptor stays open."},
    {"kinds", setns_kinds, METH_NOARGS,
     "kinds() -> (Kind, ...): the namespace table, one read-only record per\n"
     "type in TYPES order (name, variable, clone_flag, self_links,\n"
     "single_threaded).  A new tuple on each call: keep it."},
    {"boot", setns_boot, METH_VARARGS,
     "boot(keep_old_root=False): run the gons_* sequence from the C\n"
     "environment, once per process.  Returns the report tuple the first\n"
     "time, None on every later call.  keep_old_root: when gons_mnt is\n"
     "joined, keep an O_PATH descriptor on the original root (see\n"
     "take_old_root)."},
    {"take_old_root", setns_take_old_root, METH_NOARGS,
     "take_old_root() -> (root_fd, mnt_ns_fd) or None: O_CLOEXEC\n"
     "descriptors on the root (O_PATH) and the mount namespace the process\n"
     "had before the mnt join (boot(True) only); the second keeps the mounts\n"
     "below that root attached.  The caller owns both; later calls: None."},
    {"report", setns_report, METH_NOARGS,
     "The report tuple of this process's boot(), or None if it never ran."},
    {"apply", setns_apply, METH_VARARGS,
     "apply(order, paths) -> report tuple: run the sequence on explicit\n"
     "values (no once-per-process guard, no environment, no secure check)."},
    {"preload", setns_preload, METH_VARARGS,
     "preload(path, flags) -> None, or the dlerror() message: dlopen the\n"
     "shared library at path and keep it loaded for good."},
    {"compile_program", setns_compile_program, METH_VARARGS,
     "compile_program(source, filename) -> code: the source (bytes) compiled\n"
     "as python compiles a script it runs, without builtin compile()'s\n"
     "first-use cost."},
    {"loaded", setns_loaded, METH_NOARGS,
     "loaded() -> [path, ...]: the shared objects loaded in the process\n"
     "(dl_iterate_phdr; the executable left out)."},
    {NULL, NULL, 0, NULL},
};

/* module.name = a tuple of count strings: the table's names or variables,
 * or texts when it is not NULL. */
static int add_string_tuple(PyObject *module, const char *name,
                            int use_variable, const char *const *texts,
                            int count)
{
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL)
        return -1;
    for (int kind = 0; kind < count; kind++) {
        PyObject *text = PyUnicode_FromString(
            texts != NULL  ? texts[kind]
            : use_variable ? ns_kinds[kind].variable
                           : ns_kinds[kind].name);
        if (text == NULL || PyTuple_SetItem(tuple, kind, text) < 0) {
            Py_DECREF(tuple);
            return -1;
        }
    }
    if (PyModule_AddObject(module, name, tuple) < 0) {
        Py_DECREF(tuple);
        return -1;
    }
    return 0;
}

static int setns_exec(PyObject *module)
{
    if (add_string_tuple(module, "TYPES", 0, NULL, NS_KIND_COUNT) < 0 ||
        add_string_tuple(module, "VARIABLES", 1, NULL, NS_KIND_COUNT) < 0 ||
        add_string_tuple(module, "FINISH_VARIABLES", 0, finish_variables,
                         FINISH_VARIABLE_COUNT) < 0 ||
        PyModule_AddStringConstant(module, "ORDER_VARIABLE",
                                   NS_ORDER_VARIABLE) < 0 ||
        PyModule_AddStringConstant(module, "DEFAULT_ORDER",
                                   NS_DEFAULT_ORDER) < 0 ||
        PyModule_AddIntConstant(module, "STDERR_TIMEOUT_MS",
                                STDERR_TIMEOUT_MS) < 0 ||
        PyModule_AddFunctions(module, host_exec_methods) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot setns_slots[] = {
    {Py_mod_exec, (void *)setns_exec},
#ifdef Py_GIL_DISABLED
    /* The module keeps no Python state between calls; boot_done and
     * boot_report are written once, before the interpreter has threads. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef helper_module = {
    PyModuleDef_HEAD_INIT,
    "_pyns_boot",
    "Join Linux namespaces named by the gons_* variables (C helper).",
    0,
    setns_methods,
    setns_slots,
    NULL,
    NULL,
    NULL,
};

/* Installed as the top-level module _pyns_boot, beside pyns_boot.pth, so
 * the start-up line imports no package; the rest of the code imports it
 * under this one name too. */
PyMODINIT_FUNC PyInit__pyns_boot(void)
{
    return PyModuleDef_Init(&helper_module);
}
