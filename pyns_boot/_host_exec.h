/*
 * Children of the interpreter after a mnt join with keep-imports: see
 * _host_exec.c.  Include after Python.h.
 */
#ifndef PYNS_BOOT_HOST_EXEC_H
#define PYNS_BOOT_HOST_EXEC_H

/* enter_mount_namespace, probe_mount_namespace, exec_in_mount_namespace:
 * added to the module by its exec slot (PyModule_AddFunctions). */
extern PyMethodDef host_exec_methods[];

#endif
