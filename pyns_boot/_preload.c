/*
 * Shared libraries after a mnt join with keep-imports (pyns_boot._elfdeps,
 * docs/foreign-libraries.md): preload() loads the host's copy of a library
 * an extension module needs before the module itself loads, loaded() lists
 * what the process has.
 */
#define _GNU_SOURCE 1
#include <Python.h>

#include "_module.h"

#include <dlfcn.h>
#include <link.h>

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

PyMethodDef preload_methods[] = {
    {"preload", setns_preload, METH_VARARGS,
     "preload(path, flags) -> None, or the dlerror() message: dlopen the\n"
     "shared library at path and keep it loaded for good."},
    {"loaded", setns_loaded, METH_NOARGS,
     "loaded() -> [path, ...]: the shared objects loaded in the process\n"
     "(dl_iterate_phdr; the executable left out)."},
    {NULL, NULL, 0, NULL},
};
