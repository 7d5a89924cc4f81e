"""The fork server and its workers: the far side of call_in and NamespaceExecutor.

pyns_boot._executor starts the server as a fresh interpreter,

    python -I -S -c BOOT CONTROL_FD PACKAGE_PARENT

so it is single-threaded by construction, whatever the parent is (a
program that imports from its original root after a gons_mnt join forks it
instead: see pyns_boot._call._fork_server).  For
each worker it forks a child; the child joins the requested namespaces with
``_pyns_boot.apply`` before it runs anything else (mnt, user and time need a
single-threaded process), forks once more into a joined pid namespace (the
worker becomes the C supervisor of its child, which serves the calls from
inside it), reports the outcome and then serves calls.

Start-up cost is the point (tests/test_startup_imports.py): only built-in
and C modules (marshal, _socket, _signal) and the C helper load here.
_pickle loads in a worker only when a call or result is not plain data.

Wire format, on AF_UNIX stream sockets: frames of an 8-byte big-endian
length followed by that many bytes.  Control messages are marshal; calls
and replies are a tag byte and marshal (plain data, a module-level function
named by module and qualname) or pickle (everything else).  The control
requests carry the worker's socket as SCM_RIGHTS on the first frame byte.

Lifetimes: the server exits when its control socket reaches EOF (the parent
closed it or died) and SIGKILLs the workers it still has; a worker exits
when its own socket reaches EOF.  The server reaps its workers (SIGCHLD), so
neither leaves a zombie behind.
"""

import _signal  # type: ignore[import-not-found]  # (no stubs) signal would import enum
import _socket
import io
import marshal
import os
import sys
import time

from pyns_boot._errors import RemoteError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from _pyns_boot import Report

HEADER = 8
FD_SPACE = _socket.CMSG_SPACE(4)
STATUS_KEEP = 1024  # exit statuses kept for "status" requests
STATUS_WAIT = 2.0  # how long a "status" request waits for an exiting worker


_MNT = 2  # indexes in _pyns_boot.TYPES (checked in serve())
_PID = 4


class PeerClosed(EOFError):
    """The other end closed its socket (exited or died)."""


# ---------------------------------------------------------------- frames


def send_frame(sock: "Any", data: bytes, fd: int = -1) -> None:
    header = len(data).to_bytes(HEADER, "big")
    if fd >= 0:
        sock.sendmsg([header], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
        sock.sendall(data)
    else:
        sock.sendall(header + data)


def recv_exact(sock: "Any", size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise PeerClosed("connection closed")
        got += n
    return buffer


def recv_frame(sock: "Any", want_fd: bool = False) -> "tuple[bytearray, int]":
    """One frame, and the descriptor that came with it (-1: none)."""
    fd = -1
    if want_fd:
        header, ancdata, _flags, _addr = sock.recvmsg(HEADER, FD_SPACE)
        for level, kind, payload in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(payload) >= 4:
                fd = int.from_bytes(payload[:4], sys.byteorder)
        if not header:
            raise PeerClosed("connection closed")
        if len(header) < HEADER:
            header += recv_exact(sock, HEADER - len(header))
    else:
        header = recv_exact(sock, HEADER)
    return recv_exact(sock, int.from_bytes(header, "big")), fd


def write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(HEADER, "big") + data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise PeerClosed("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes:
    return read_exact(fd, int.from_bytes(read_exact(fd, HEADER), "big"))


# A message is a tag byte and a body: MARSHAL for plain data (marshal is
# built in: no import on the cold path), PICKLE for everything else.
MARSHAL = b"M"
PICKLE = b"P"


def encode(obj: "Any") -> bytes:
    """Marshal when obj is plain data, else pickle."""
    try:
        return MARSHAL + marshal.dumps(obj)
    except ValueError:
        import _pickle

        data: bytes = _pickle.dumps(obj, -1)
        return PICKLE + data


def decode(data: "bytes | bytearray") -> "Any":
    if data[:1] == MARSHAL:
        return marshal.loads(memoryview(data)[1:])
    import _pickle

    return _pickle.loads(memoryview(data)[1:])


# ---------------------------------------------------------------- server


class _Server:
    def __init__(self, control: "Any") -> None:
        self.control = control
        self.live = set()  # type: set[int]
        self.statuses = {}  # type: dict[int, int]

    def reap(self, *_ignored: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.live.discard(pid)
            self.statuses[pid] = status
            if len(self.statuses) > STATUS_KEEP:
                del self.statuses[next(iter(self.statuses))]

    def serve(self) -> None:
        while True:
            try:
                frame, fd = recv_frame(self.control, want_fd=True)
            except (PeerClosed, ConnectionError):
                break
            request = marshal.loads(frame)
            try:
                reply = self.handle(request, fd)
            except Exception as error:  # a bad request must not end the server
                reply = ("error", "%s: %s" % (type(error).__name__, error))
            finally:
                if fd >= 0:
                    os.close(fd)
            send_frame(self.control, marshal.dumps(reply))
        self.stop()

    def handle(self, request: "tuple[Any, ...]", fd: int) -> "tuple[Any, ...]":
        command = request[0]
        if command == "fork":
            if fd < 0:
                return ("error", "fork request without a socket")
            _, order, paths, main_path, one_shot, sys_path, keep_imports, needs_main = request[:8]
            netns = request[8] if len(request) > 8 else None  # Namespaces.netns(): the ip netns exec view
            sys.path[:] = sys_path
            if needs_main and main_path is not None:
                _preload_main(main_path)
            if (
                keep_imports
                and paths[_MNT] is not None
                and not {"pyns_boot._oldroot", "pyns_boot.hook"} <= set(sys.modules)
            ):
                try:  # loaded here, before any worker joins a mount namespace where they may not exist
                    from pyns_boot import _oldroot, hook  # noqa: F401
                except ImportError:
                    pass
            pid = os.fork()
            if pid == 0:
                self.control.close()
                _worker(fd, order, paths, main_path, one_shot, keep_imports, netns)  # never returns
            self.live.add(pid)
            return ("forked", pid)
        if command == "status":
            return ("status", self.wait_status(request[1]))
        if command == "kill":
            pid = request[1]
            if pid in self.live:
                try:
                    os.kill(pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return ("killed", pid)
        return ("error", "unknown request %r" % (command,))

    def wait_status(self, pid: int) -> "int | None":
        """The worker's wait status, waiting a little for one that is exiting."""
        deadline = time.monotonic() + STATUS_WAIT
        while pid in self.live and time.monotonic() < deadline:
            self.reap()
            if pid in self.live:
                time.sleep(0.002)
        return self.statuses.pop(pid, None)

    def stop(self) -> None:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        for pid in self.live:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(self.live):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _kept_descriptors(control_fd: int) -> "set[int]":
    """The control socket, and in a server forked from a program that keeps imports, its old-root descriptors."""
    keep = {control_fd}
    oldroot = sys.modules.get("pyns_boot._oldroot")
    root = getattr(oldroot, "root", None)
    if root is not None:
        keep.add(int(root.rsplit("/", 1)[1]))
        keep.add(getattr(oldroot, "namespace_fd", -1))
    return keep


def _close_inherited(keep: "set[int]") -> None:
    """Close what posix_spawn (or the fork) let through: workers hold only their own descriptors."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        low = 3
        for fd in sorted(keep):
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def serve(control_fd: int) -> None:
    """Entry point of the fork server process."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the parent decides; EOF ends us
    _close_inherited(_kept_descriptors(control_fd))
    control = _socket.socket(fileno=control_fd)
    # Every worker needs it, and after a mnt join it may not be reachable any more.
    import _pyns_boot

    if (_pyns_boot.TYPES[_MNT], _pyns_boot.TYPES[_PID]) != ("mnt", "pid"):
        raise RuntimeError("_pyns_boot.TYPES changed: %r" % (_pyns_boot.TYPES,))
    server = _Server(control)
    _signal.signal(_signal.SIGCHLD, server.reap)
    server.serve()


# ---------------------------------------------------------------- worker


def _netns_view(report: "Report", netns: str) -> "Report":
    """After joining /run/netns/NAME: the view of ip netns exec NAME (a failure turns the report into one)."""
    import _pyns_boot

    try:
        for failure in _pyns_boot.netns_view(netns):
            os.write(2, os.fsencode("pyns_boot: netns %s: %s\n" % (netns, failure)))
    except OSError as error:
        return _failed(report, error.errno, str(error.strerror), "net")
    return report


def _worker(
    fd: int,
    order: "str | None",
    paths: "tuple[str | None, ...]",
    main_path: "str | None",
    one_shot: bool,
    keep_imports: bool,
    netns: "str | None" = None,
) -> None:
    code = 0
    set_up = False
    try:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        report = _set_up(order, paths, keep_imports, netns)
        write_frame(fd, encode(("joined" if report["ok"] else "join_failed", report)))
        set_up = True
        if report["ok"]:
            _serve_calls(fd, main_path, one_shot)
    except (PeerClosed, BrokenPipeError, ConnectionError):
        pass
    except BaseException as error:
        code = 70
        if not set_up:  # the caller gets the reason, not a bare exit status
            try:
                write_frame(
                    fd, encode(("setup_failed", "%s: %s" % (type(error).__name__, error), _format_exception(error)))
                )
            except BaseException:
                pass
    finally:
        os._exit(code)


def _open_above_stdio(path: str, flags: int) -> int:
    """os.open, never on 0-2: a program that closed stdio and later dup2s
    /dev/null onto 0-2 would replace a kept descriptor there."""
    fd = os.open(path, flags)
    if fd > 2:
        return fd
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _set_up(
    order: "str | None", paths: "tuple[str | None, ...]", keep_imports: bool, netns: "str | None" = None
) -> "Report":
    """Join (a named netns with the view of ip netns exec); enter a joined pid namespace (fork: the worker
    lives inside it); keep importing after a mnt join.

    Returns the report tuple of _pyns_boot.apply, made a failure when a later step failed."""
    import _pyns_boot

    mnt_path = paths[_MNT]
    oldroot = sys.modules.get("pyns_boot._oldroot") if keep_imports else None
    inherited_root = getattr(oldroot, "root", None)  # the fork server was forked from a program that keeps imports
    old_root = -1
    if mnt_path is not None and oldroot is not None and inherited_root is None:
        old_root = _open_above_stdio("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        report = _pyns_boot.apply(order, paths)
        if report["ok"] and netns is not None:
            report = _netns_view(report, netns)
        outcomes = {t: entry["outcome"] for t, entry in report["namespaces"].items()}
        if report["ok"] and outcomes.get("pid") == "joined":
            try:
                _pyns_boot.enter_pid(str(paths[_PID]))
            except OSError as error:
                return _failed(report, error.errno, str(error.strerror), "pid")
        if report["ok"] and outcomes.get("mnt") == "joined" and oldroot is not None:
            root = inherited_root if inherited_root is not None else "/proc/self/fd/%d" % old_root
            try:
                os.stat(root + "/")
            except OSError as error:
                return _failed(report, error.errno, _unreachable(str(mnt_path), root, error, paths), "mnt")
            if inherited_root is None:
                package = sys.modules["pyns_boot"]
                package.__path__[:] = [root + p if p.startswith("/") else p for p in package.__path__]
                oldroot.activate(old_root, mnt_path)
                old_root = -1
        return report
    finally:
        if old_root >= 0:
            os.close(old_root)


def _failed(report: "Report", error_errno: "int | None", message: str, failed: str) -> "Report":
    return {**report, "ok": False, "message": message, "errno": error_errno or 0, "failed": failed}


def _unreachable(mnt_path: str, root: str, error: OSError, paths: "tuple[str | None, ...]") -> str:
    """After a mnt join, the caller's installation is out of reach: why, and the way out."""
    hook = sys.modules["pyns_boot.hook"]
    reason = hook.why_unreachable(error)
    way_out = ""
    if reason == hook.OTHER_PID_NAMESPACE:
        if paths[_PID] is None:
            way_out = (
                "add pid=%s to the Namespaces (the target's pid namespace) so that the worker lives inside it, or "
                % (hook.sibling_pid_path(mnt_path))
            )
        else:
            way_out = "make pid name the pid namespace that /proc belongs to, or "
    return (
        'pyns_boot: the worker joined mnt "%s", but cannot keep importing from the caller\'s installation: %s is not '
        "reachable there (%s); %sset PYNS_BOOT_KEEP_IMPORTS=0 in the caller to import from the target's filesystem "
        "instead" % (mnt_path, root, reason, way_out)
    )


def _serve_calls(fd: int, main_path: "str | None", one_shot: bool) -> None:
    while True:
        frame = read_frame(fd)
        try:
            fn, args, kwargs = _decode_call(frame, main_path)
            reply = ("ok", fn(*args, **kwargs))  # type: tuple[Any, ...]
        except BaseException as error:
            reply = ("error", error, _format_exception(error))
        del frame
        write_frame(fd, _encode_reply(reply))
        del reply
        if one_shot:
            return


def _decode_call(frame: bytes, main_path: "str | None") -> "tuple[Any, tuple[Any, ...], dict[str, Any]]":
    """The call: (module, qualname, args, kwargs) marshalled, or (fn, args, kwargs) pickled."""
    if frame[:1] == MARSHAL:
        module_name, qualname, args, kwargs = marshal.loads(memoryview(frame)[1:])
        __import__(module_name)
        fn = sys.modules[module_name]
        for part in qualname.split("."):
            fn = getattr(fn, part)
        return fn, args, kwargs
    call = _unpickler_class(main_path)(io.BytesIO(memoryview(frame)[1:])).load()  # type: tuple[Any, tuple[Any, ...], dict[str, Any]]
    return call


def _encode_reply(reply: "tuple[Any, ...]") -> bytes:
    try:
        return encode(reply)
    except BaseException as error:
        if reply[0] == "ok":
            text = _format_exception(error)
            replacement = TypeError(
                "the result of type %s cannot be pickled back to the caller: %s" % (type(reply[1]).__name__, error)
            )
            return encode(("error", replacement, text))
        # the exception itself does not pickle: send its type and text instead
        substitute = RemoteError("%s: %s" % (type(reply[1]).__name__, reply[1]))
        return encode(("error", substitute, reply[2]))


def _format_exception(error: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _unpickler_class(main_path: "str | None") -> "Any":
    import _pickle

    class Unpickler(_pickle.Unpickler):
        def find_class(self, module: str, name: str) -> "Any":
            if module in ("__main__", "__mp_main__"):
                return getattr(_load_main(main_path, name), name)
            return super().find_class(module, name)

    return Unpickler


def _preload_main(main_path: str) -> None:
    """Load the caller's script once here, so that each worker need not (multiprocessing's forkserver does too).

    When that fails the worker tries again and reports the error with the call.
    """
    if "__mp_main__" in sys.modules:
        return
    try:
        _load_main(main_path, "")
    except BaseException:
        sys.modules.pop("__mp_main__", None)


def _load_main(main_path: "str | None", name: str) -> "Any":
    """The caller's __main__ script, run once here as __mp_main__ (as multiprocessing's spawn does)."""
    module = sys.modules.get("__mp_main__")
    if module is not None:
        return module
    if main_path is None:
        raise AttributeError(
            "cannot load __main__.%s in the worker: the caller's __main__ has no file (an interactive session or "
            "python -c); define the callable in an importable module" % name
        )
    import runpy
    import types

    oldroot = sys.modules.get("pyns_boot._oldroot")
    if oldroot is not None:
        main_path = oldroot.remap(main_path)
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(runpy.run_path(str(main_path), run_name="__mp_main__"))
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    return module
