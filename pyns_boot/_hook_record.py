"""What the start-up hook did in this process, on the Python side: one record.

Written by pyns_boot.hook (ran, load_error, imports_root, imports_error,
netns, finish_error) and pyns_boot._policy (policy); read by
pyns_boot._status._gather(), the one function that puts it together with
the C helper's side (its report(), policy() and pid_mode()).  The common
start-up never loads this module (the C helper's run() acts alone and
records in C), so status() looks for it in sys.modules.  It imports
nothing.  pyns_boot._keep_imports's globals are that module's working state
(the workers read them), not part of this record.
"""

#: pyns_boot.hook.run() acted in this process (the Python start-up path).
ran = False
#: Why the hook joined nothing: a C helper that did not load or is stale,
#: a PYNS_BOOT_KEEP_IMPORTS value not understood, a step of pyns_boot._after_joins
#: that could not be prepared.
load_error = None  # type: str | None
#: The failure policy applied by pyns_boot._policy ("exit", "warn", "ignore").
policy = None  # type: str | None
#: After a mnt join: "/proc/self/fd/N" while imports read the original root
#: (pyns_boot._keep_imports), or why that could not be done.
imports_root = None  # type: str | None
imports_error = None  # type: str | None
#: The name gons_netns gave (pyns_boot._after_joins made gons_net of it): the
#: failure's message and hint name gons_netns, as the user set it.
netns = None  # type: str | None
#: A step of pyns_boot._after_joins that failed after the joins (working
#: directory, ids, the view of ip netns exec).
finish_error = None  # type: str | None
