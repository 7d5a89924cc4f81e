"""Every exception pyns_boot raises, in one leaf module that imports nothing.

The public ones are re-exported by the package (``pyns_boot.NamespaceError``
and the rest); ``UsageError`` and ``CommandError`` are the pyns-boot
command's own, mapped to its exit statuses 2 and 1.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyns_boot._status import Status


class NamespaceError(OSError):
    """The start-up hook failed (or did not run although gons_* variables are set).

    ``errno`` is the kernel's where a system call failed, EINVAL for errors
    found without one, EPERM for a secure-execution refusal and None when the
    hook did not run at all.  ``failed`` names the namespace type.
    """

    failed: "str | None"
    status: "Status | None"

    def __init__(
        self,
        errno: "int | None",
        message: str,
        failed: "str | None" = None,
        status: "Status | None" = None,
    ) -> None:
        super().__init__(errno, message)
        self.failed = failed
        self.status = status

    def __str__(self) -> str:
        return str(self.strerror)


class WorkerDied(RuntimeError):
    """The worker process (or its fork server) died before it returned a result."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker; set as the __cause__ of the re-raised exception."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip("\n")


class RemoteError(Exception):
    """Stands in for an exception that could not cross between the processes."""


class ContainerError(LookupError):
    """A container name that does not lead to one running container.

    ``reason`` is one of "unknown", "no-runtime", "not-running", "ambiguous",
    "bad-name".  The message is one line and says what was tried.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UsageError(Exception):
    """The pyns-boot command line is wrong (exit status 2)."""


class CommandError(Exception):
    """The pyns-boot command's subject failed: no such process, not a namespace, ... (exit status 1)."""
