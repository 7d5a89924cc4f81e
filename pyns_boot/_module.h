/*
 * The C helper _pyns_boot as Python sees it, split by concern; each file
 * adds its functions to the module (PyModule_AddFunctions in the exec slot
 * of _pyns_boot.c).  Include after Python.h.
 *
 *   _pyns_boot.c   the module: its table, its constants, the conversions
 *                  below, and the core's join API for the package (apply,
 *                  plan, check_reference, kinds, compile_program)
 *   _startup.c     the start-up hook: run(), its one record (report,
 *                  policy, pid_mode), the pid entry's fork
 *   _variables.c   what the variables ask for besides the joins
 *   _policy.c      the failure policy's C side and the bounded writer
 *   _netns_view.c  netns_view(): the mounts of `ip netns exec` after a join
 *   _preload.c     preload(), loaded(): shared libraries after a mnt join
 *   _host_exec.c   children started from the original mount namespace
 *   _run_command.c run_command(), command(): pyns-boot run -c CODE's common
 *                  command lines, parsed, checked and joined
 *   _run_code.c    run_code(): CODE run as python -c runs it
 *
 * Below them, without Python: _setns.c (the core: open, check, join) and
 * _pid_entry.c (the supervisor).
 */
#ifndef PYNS_BOOT_MODULE_H
#define PYNS_BOOT_MODULE_H

#include "_setns.h"

/* None for NULL, else the text decoded as os.fsdecode does. */
PyObject *optional_fs_string(const char *text);

/* The report as Python sees it (stubs/_pyns_boot.pyi, Report). */
PyObject *report_to_python(const struct ns_report *report);

/* Raise type(message), or OSError(error_errno, message) when type is
 * OSError, taking message over (malloc'd; NULL: memory ran out).  Returns
 * NULL. */
PyObject *raise_message(PyObject *type, int error_errno, char *message);

/* The NAME of a value that is a path to /run/netns/NAME (_netns_view.c). */
int netns_name_of(const char *value, char *name, size_t size);

extern PyMethodDef startup_methods[];
extern PyMethodDef policy_methods[];
extern PyMethodDef netns_view_methods[];
extern PyMethodDef preload_methods[];
extern PyMethodDef run_command_methods[];

/* Run -c CODE (arguments[program], "-c" or "-cCODE", the arguments after it)
 * as python -c runs it: 0, or NULL with the program's exception, SystemExit
 * too (_run_code.c). */
PyObject *run_code(PyObject *arguments, Py_ssize_t program);

/* CODE as python -c compiles it on this version: from 3.14 on without the
 * leading blanks all its lines share (_PyUnicode_Dedent) (_run_code.c). */
PyObject *code_as_python_c_takes_it(PyObject *code);

/* TRIGGER_VARIABLES, AFTER_JOINS_VARIABLES, PYTHON_ENTRY, STDERR_TIMEOUT_MS:
 * _startup.c's. */
int startup_add_constants(PyObject *module);

#endif
