/*
 * _pyns_boot: the C helper, a top-level extension module beside
 * pyns_boot.pth (its one name: the start-up line imports no package).  This
 * file is the module: its table of functions and constants, the
 * conversions the other files share (_module.h), and the core's join API
 * for the package:
 *   apply()  the join on explicit values, for callers that manage their own
 *            processes (the workers' children, the pyns-boot command)
 *   plan(), check_reference(), kinds()
 *            the core's own decisions (_order.c: ns_plan,
 *            ns_check_reference, ns_kinds), so that each is written once
 *   compile_program()
 *            a program's source compiled as python compiles a script
 * The start-up hook itself, run(), is _startup.c's.  The contract is
 * docs/env-interface.md.
 */
#define _GNU_SOURCE 1 /* exactly as pyconfig.h of 3.8-3.10 defines it: no redefinition error */
/* Python.h before any system header (_pid_entry.h has some), as the C API
 * asks: a newer glibc's features.h (zig's, for the release wheels) sets
 * other _POSIX_C_SOURCE/_XOPEN_SOURCE values than pyconfig.h would redefine. */
#include <Python.h>

#include "_module.h"
#include "_host_exec.h"

#include <stdlib.h>
#include <string.h>

PyObject *optional_fs_string(const char *text)
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
PyObject *report_to_python(const struct ns_report *report)
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
PyObject *raise_message(PyObject *type, int error_errno, char *message)
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

/* ---- kinds(): the namespace table (_order.c ns_kinds) for Python ---- */

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
    {"apply", setns_apply, METH_VARARGS,
     "apply(order, paths) -> Report: run the sequence on explicit values (no\n"
     "once-per-process guard, no environment, no secure check)."},
    {"compile_program", setns_compile_program, METH_VARARGS,
     "compile_program(source, filename) -> code: the source (bytes) compiled\n"
     "as python compiles a script it runs, without builtin compile()'s\n"
     "first-use cost."},
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
        PyModule_AddStringConstant(module, "ORDER_VARIABLE",
                                   NS_ORDER_VARIABLE) < 0 ||
        PyModule_AddStringConstant(module, "DEFAULT_ORDER",
                                   NS_DEFAULT_ORDER) < 0 ||
        startup_add_constants(module) < 0 ||
        PyModule_AddFunctions(module, startup_methods) < 0 ||
        PyModule_AddFunctions(module, policy_methods) < 0 ||
        PyModule_AddFunctions(module, netns_view_methods) < 0 ||
        PyModule_AddFunctions(module, preload_methods) < 0 ||
        PyModule_AddFunctions(module, host_exec_methods) < 0 ||
        PyModule_AddFunctions(module, run_command_methods) < 0 ||
        /* True once pyns-boot run lets the hook act for its program (pyns_boot._policy) */
        PyModule_AddIntConstant(module, "program_started", 0) < 0)
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
 * under this one name too.  Exported by name even under -fvisibility=hidden
 * (setup.py): 3.8's PyMODINIT_FUNC carries no visibility of its own. */
__attribute__((visibility("default"))) PyMODINIT_FUNC PyInit__pyns_boot(void)
{
    return PyModuleDef_Init(&helper_module);
}
