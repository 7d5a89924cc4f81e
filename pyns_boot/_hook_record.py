"""What the start-up hook did in this process, on the Python side: one record.

Written by pyns_boot.hook (ran, load_error, imports_root, imports_error,
netns, threads_note, after_joins_error) and pyns_boot._policy (policy);
read by pyns_boot._status._gather(), the one function that puts it together
with the C helper's side (its report(), policy() and pid_mode()).  The
common start-up never loads this module (the C helper's run() acts alone
and records in C), so status() looks for it in sys.modules.  It imports
nothing.  pyns_boot._keep_imports's globals are that module's working state
(the workers read them), not part of this record.
"""

#: pyns_boot.hook.run() acted in this process: the fallback for a C helper
#: that does not load or is stale.
ran = False
#: Why nothing was joined: a C helper that did not load or is stale.
load_error = None  # type: str | None
#: The failure policy applied by pyns_boot._policy ("exit", "warn", "ignore").
policy = None  # type: str | None
#: After a mnt join: "/proc/self/fd/N" while imports read the original root
#: (pyns_boot._keep_imports), or why that could not be done.
imports_root = None  # type: str | None
imports_error = None  # type: str | None
#: The name gons_netns gave (C made the net join's path of it): the
#: failure's message and hint name gons_netns, as the user set it.
netns = None  # type: str | None
#: After a join refused for other threads: which .pth files ran before
#: pyns_boot.pth (pyns_boot._sitedirs.threads_note), added to the message.
threads_note = None  # type: str | None
#: A step after the joins that failed (pyns_boot._after_joins: the view of
#: ip netns exec, the working directory, the ids).
after_joins_error = None  # type: str | None
