"""Typed surface of the C helper _pyns_boot (pyns_boot/_pyns_boot.c), a top-level module beside pyns_boot.pth."""

from types import CodeType
from typing import Any, Callable, Literal, Sequence, TypedDict, TypeVar

_T = TypeVar("_T")

class Entry(TypedDict):
    path: str | None  # the reference, or None when not requested
    outcome: str  # "not_requested", "not_reached", "joined", "already_joined", "failed"
    early: bool  # opened before the first switch ("!" in gons_order)

class Report(TypedDict):
    ok: bool
    message: str | None  # the failure's message
    errno: int  # 0 on success
    failed: str | None  # the type that failed
    order: str  # the effective order
    namespaces: dict[str, Entry]  # every type, in TYPES order

class Steps(TypedDict):
    """What the C helper's run() hands to pyns_boot.hook.after_joins() with the report."""

    old_root: tuple[int, int] | None  # kept after a mnt join: (root fd, mount namespace fd), now the caller's
    inherited: str | None  # PYNS_BOOT_OLD_ROOT_FDS (pyns_boot._children)
    netns: str | None  # gons_netns NAME
    wd: str | None  # PYNS_BOOT_WD
    wd_fd: int  # its !DIR, opened before the joins (now the caller's), or -1
    gid: int | None  # PYNS_BOOT_SETGID
    uid: int | None  # PYNS_BOOT_SETUID
    cwd: str | None  # with gons_mnt: the working directory before the joins
    threads: int  # the thread count when a join was refused for other threads, else 0

class Kind:
    """One row of the C table (_order.c ns_kinds), from kinds(); a read-only record."""

    @property
    def name(self) -> str: ...  # "net": its name in gons_order
    @property
    def variable(self) -> str: ...  # "gons_net"
    @property
    def clone_flag(self) -> int: ...  # CLONE_NEWNET: setns()'s nstype, NS_GET_NSTYPE's answer
    @property
    def self_links(self) -> tuple[str, ...]: ...  # /proc/self/ns links that must all match for "already joined"
    @property
    def single_threaded(self) -> bool: ...  # only a single-threaded process may join

TYPES: tuple[str, ...]
VARIABLES: tuple[str, ...]
TRIGGER_VARIABLES: tuple[str, ...]  # VARIABLES, ORDER_VARIABLE, gons_netns: what the .pth line looks for
AFTER_JOINS_VARIABLES: tuple[str, ...]
PYTHON_ENTRY: tuple[str, str]  # the one Python name C calls: (module, function)
ORDER_VARIABLE: str
DEFAULT_ORDER: str
STDERR_TIMEOUT_MS: int

def report() -> Report | None: ...
def apply(order: str | bytes | None, paths: Sequence[str | bytes | None]) -> Report: ...
def plan(order: str | bytes | None, paths: Sequence[str | bytes | None]) -> tuple[tuple[str, bool], ...]: ...
def check_reference(type: str, path: str | bytes) -> None: ...
def kinds() -> tuple[Kind, ...]: ...  # in TYPES order; a new tuple on each call
def run() -> None: ...
def run_command(arguments: list[str]) -> int | None: ...
def command() -> int | None: ...
def dedent_code(code: str) -> str: ...

#: 0, then True once pyns-boot run lets the hook act for its program (pyns_boot._policy.program_started).
program_started: int

def policy() -> str | None: ...
def pid_mode() -> str | None: ...
def enter_pid(path: str | bytes) -> None: ...
def in_main_interpreter() -> bool | None: ...
def write_stderr(data: bytes) -> bool: ...
def preload(path: str | bytes, flags: int) -> str | None: ...
def loaded() -> list[str]: ...
def compile_program(source: bytes, filename: str | bytes) -> CodeType: ...
def netns_view(name: str | bytes) -> list[str]: ...
def netns_name_of(value: str | bytes) -> str | None: ...
def enter_mount_namespace(fd: int) -> None: ...
def call_in_mount_namespace(
    fd: int, callable: Callable[..., _T], args: tuple[Any, ...]
) -> tuple[Literal[True], _T] | tuple[Literal[False], int]: ...
def exec_in_mount_namespace(
    fd: int, path: bytes, argv: list[bytes], env: list[bytes], inherit: list[int]
) -> tuple[int, int]: ...
