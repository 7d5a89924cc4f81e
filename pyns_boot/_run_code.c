/*
 * run_code(): pyns-boot run's -c CODE run as `python -c` runs it, in this
 * process after the joins (_run_command.c): sys.argv and sys.orig_argv as
 * python sets them, a new, empty __main__, CODE compiled by exec() as
 * python compiles it, and tracebacks that start at the program, not at the
 * command's script (pyns_boot._run_fast.run_prepared, for the other forms).
 */
#include <Python.h>

#include "_module.h"

/* sys.excepthook while the program runs: its traceback starts at the
 * program, not at the command's script (self: (original hook, the script's
 * globals)); pyns_boot._run_fast.run_prepared's excepthook. */
static PyObject *trimmed_excepthook(PyObject *self, PyObject *args)
{
    PyObject *kind, *value, *tb;
    if (!PyArg_ParseTuple(args, "OOO:excepthook", &kind, &value, &tb))
        return NULL;
    PyObject *original = PyTuple_GetItem(self, 0), *command_main = PyTuple_GetItem(self, 1);
    Py_INCREF(tb);
    while (tb != Py_None) {
        PyObject *frame = PyObject_GetAttrString(tb, "tb_frame");
        PyObject *globals = frame != NULL ? PyObject_GetAttrString(frame, "f_globals") : NULL;
        Py_XDECREF(frame);
        PyObject *next = globals == command_main ? PyObject_GetAttrString(tb, "tb_next") : NULL;
        int trimmed = globals == command_main;
        Py_XDECREF(globals);
        if (globals == NULL || (trimmed && next == NULL)) {
            Py_DECREF(tb);
            return NULL;
        }
        if (!trimmed)
            break;
        Py_DECREF(tb);
        tb = next;
    }
    /* none left (a SyntaxError in CODE): shown as python -c shows it, without a traceback */
    PyObject *traced = PyObject_CallMethod(value, "with_traceback", "O", tb);
    PyObject *result = traced != NULL ? PyObject_CallFunctionObjArgs(original, kind, traced, tb, NULL) : NULL;
    Py_XDECREF(traced);
    Py_DECREF(tb);
    return result;
}

static PyMethodDef trimmed_excepthook_def = {"excepthook", trimmed_excepthook, METH_VARARGS,
                                             "sys.excepthook without pyns-boot's own frames."};

/* A new, empty __main__ as the interpreter makes it, in sys.modules. */
static PyObject *new_main(PyObject *command_main)
{
    PyObject *main = PyModule_New("__main__");
    PyObject *globals = main != NULL ? PyModule_GetDict(main) : NULL;
    PyObject *bootstrap = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib");
    PyObject *loader = bootstrap != NULL ? PyObject_GetAttrString(bootstrap, "BuiltinImporter") : NULL;
    PyObject *builtins = PyDict_GetItemString(command_main, "__builtins__");
    int annotated = PyDict_GetItemString(command_main, "__annotations__") != NULL;
    PyObject *annotations = annotated ? PyDict_New() : NULL;
    int failed = globals == NULL || loader == NULL || builtins == NULL || (annotated && annotations == NULL) ||
                 PyDict_SetItemString(globals, "__builtins__", builtins) < 0 ||
                 PyDict_SetItemString(globals, "__loader__", loader) < 0 ||
                 (annotations != NULL && PyDict_SetItemString(globals, "__annotations__", annotations) < 0) ||
                 PyDict_SetItemString(PyImport_GetModuleDict(), "__main__", main) < 0;
    Py_XDECREF(loader);
    Py_XDECREF(annotations);
    if (failed) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "pyns-boot run: cannot make the program's __main__");
        Py_XDECREF(main);
        return NULL;
    }
    return main;
}

/* sys.argv and sys.orig_argv as python -c sets them: ["-c", ARG...] and
 * [sys.executable, -c, CODE, ARG...]; rest: the index of the first ARG. */
static int set_argv(PyObject *arguments, Py_ssize_t program, Py_ssize_t rest)
{
    PyObject *argv = PySys_GetObject("argv"), *executable = PySys_GetObject("executable");
    PyObject *args = PyList_GetSlice(arguments, rest - 1, PyList_Size(arguments));
    PyObject *dash_c = PyUnicode_FromString("-c");
    int result = argv != NULL && executable != NULL && args != NULL && dash_c != NULL ? 0 : -1;
    if (result < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "pyns-boot run: sys.argv or sys.executable is missing");
    if (result == 0) {
        result = PyList_SetItem(args, 0, dash_c); /* takes dash_c, on failure too */
        dash_c = NULL;
    }
    if (result == 0)
        result = PyList_SetSlice(argv, 0, PyList_Size(argv), args);
    Py_XDECREF(dash_c);
    Py_XDECREF(args);
    if (result < 0 || PySys_GetObject("orig_argv") == NULL) /* 3.10+ */
        return result;
    PyObject *orig_argv = PyList_GetSlice(arguments, program, PyList_Size(arguments));
    result = orig_argv != NULL && PyList_Insert(orig_argv, 0, executable) == 0
                 ? PySys_SetObject("orig_argv", orig_argv)
                 : -1;
    Py_XDECREF(orig_argv);
    return result;
}

/* exec(code, globals) with hook as sys.excepthook; the original back unless
 * an exception other than SystemExit goes up to be shown. */
static PyObject *exec_with_hook(PyObject *code, PyObject *globals, PyObject *hook, PyObject *original)
{
    PyObject *exec = PyDict_GetItemString(PyEval_GetBuiltins(), "exec");
    if (exec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pyns-boot run: builtins has no exec");
        return NULL;
    }
    if (PySys_SetObject("excepthook", hook) < 0)
        return NULL;
    PyObject *result = PyObject_CallFunctionObjArgs(exec, code, globals, NULL);
    if (result == NULL && !PyErr_ExceptionMatches(PyExc_SystemExit))
        return NULL;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PySys_GetObject("excepthook") == hook && PySys_SetObject("excepthook", original) < 0) {
        Py_XDECREF(type); /* sys's dict refused the item: that error instead */
        Py_XDECREF(value);
        Py_XDECREF(tb);
        Py_XDECREF(result);
        return NULL;
    }
    if (type != NULL)
        PyErr_Restore(type, value, tb);
    return result;
}

/* The length of the leading blanks (spaces, tabs) that all lines of text
 * with more than blanks share; 0: none (CPython's
 * search_longest_common_leading_whitespace()). */
static Py_ssize_t common_margin(const char *text, const char *end)
{
    const char *margin = NULL;
    Py_ssize_t length = 0;
    for (const char *line = text; line < end; line++) {
        const char *start = line, *blanks_end = NULL;
        for (; line < end && *line != '\n'; line++)
            if (blanks_end == NULL && *line != ' ' && *line != '\t') {
                if (line == start)
                    return 0;
                blanks_end = line;
            }
        if (blanks_end == NULL)
            continue; /* blanks only */
        if (margin == NULL) {
            margin = start;
            length = blanks_end - start;
            continue;
        }
        Py_ssize_t same = 0;
        while (same < length && start + same < blanks_end && margin[same] == start[same])
            same++;
        if ((length = same) == 0)
            return 0;
    }
    return length;
}

PyObject *code_as_python_c_takes_it(PyObject *code)
{
    PyObject *version = PySys_GetObject("version_info");
    PyObject *minor = version != NULL ? PySequence_GetItem(version, 1) : NULL;
    long at_least_14 = minor != NULL ? PyLong_AsLong(minor) >= 14 : 0;
    Py_XDECREF(minor);
    PyObject *utf8 = at_least_14 ? PyUnicode_AsUTF8String(code) : NULL;
    PyErr_Clear(); /* before 3.14, not UTF-8 (python -c refuses it) or memory: as it is */
    const char *text = utf8 != NULL ? PyBytes_AsString(utf8) : NULL;
    Py_ssize_t size = utf8 != NULL ? PyBytes_Size(utf8) : 0;
    Py_ssize_t margin = text != NULL ? common_margin(text, text + size) : 0;
    char *out = margin > 0 ? PyMem_Malloc((size_t)size) : NULL;
    PyObject *result = NULL;
    if (margin > 0 && out == NULL) {
        result = PyErr_NoMemory();
    } else if (out != NULL) {
        Py_ssize_t written = 0;
        for (const char *line = text, *end = text + size; line < end; line++) {
            const char *start = line;
            int blanks_only = 1;
            for (; line < end && *line != '\n'; line++)
                blanks_only &= *line == ' ' || *line == '\t';
            Py_ssize_t kept = blanks_only ? 0 : (line - start) - margin; /* blank lines become empty */
            memcpy(out + written, start + (blanks_only ? 0 : margin), (size_t)kept);
            written += kept;
            if (line < end)
                out[written++] = '\n';
        }
        result = PyUnicode_DecodeUTF8(out, written, "strict");
    } else {
        result = (Py_INCREF(code), code);
    }
    PyMem_Free(out);
    Py_XDECREF(utf8);
    return result;
}

/* Run -c CODE (arguments[program]) as python -c runs it, in a new __main__.
 * 0, or NULL with the program's exception (SystemExit too) for the script
 * to raise as python would. */
PyObject *run_code(PyObject *arguments, Py_ssize_t program)
{
    PyObject *first = PyList_GetItem(arguments, program);
    Py_ssize_t length = first != NULL ? PyUnicode_GetLength(first) : -1;
    if (length < 2) /* parse() saw to it */
        return PyErr_Format(PyExc_RuntimeError, "pyns-boot run: no -c CODE");
    Py_ssize_t rest = length > 2 ? program + 1 : program + 2;
    PyObject *given = length > 2 ? PyUnicode_Substring(first, 2, length) : PyList_GetItem(arguments, program + 1);
    if (given != NULL && length == 2)
        Py_INCREF(given);
    PyObject *code = given != NULL ? code_as_python_c_takes_it(given) : NULL;
    Py_XDECREF(given);
    if (code == NULL)
        return NULL;
    PyObject *main_module = PyDict_GetItemString(PyImport_GetModuleDict(), "__main__");
    PyObject *command_main = main_module != NULL ? PyModule_GetDict(main_module) : NULL;
    PyObject *original = PySys_GetObject("excepthook");
    PyObject *state = command_main != NULL && original != NULL ? PyTuple_Pack(2, original, command_main) : NULL;
    PyObject *hook = state != NULL ? PyCFunction_NewEx(&trimmed_excepthook_def, state, NULL) : NULL;
    PyObject *main = NULL, *result = NULL;
    if (hook == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "pyns-boot run: no __main__ or sys.excepthook");
    if (hook != NULL && set_argv(arguments, program, rest) == 0 && (main = new_main(command_main)) != NULL)
        result = exec_with_hook(code, PyModule_GetDict(main), hook, original);
    if (result != NULL) {
        Py_DECREF(result);
        result = PyLong_FromLong(0);
    }
    Py_XDECREF(main);
    Py_XDECREF(hook);
    Py_XDECREF(state);
    Py_DECREF(code);
    return result;
}

