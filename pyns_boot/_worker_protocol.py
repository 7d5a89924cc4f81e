"""The wire between a program and its workers: frames, encoding and the records that cross.

Both sides import it: the program's side (pyns_boot._worker_client) and the
fork server and its workers (pyns_boot._worker_server), which load it into a
fresh ``python -I -S`` interpreter.  So it imports only built-in modules
(marshal, _socket, os, sys; tests/test_startup_imports.py); _pickle loads only for a message that is not
plain data.

Frames, on AF_UNIX stream sockets: an 8-byte big-endian length followed by
that many bytes.  A control request may carry a descriptor (the worker's
socket) as SCM_RIGHTS on the first byte of its frame.

Messages: control requests and replies are marshal; calls and their
replies are a tag byte and marshal (MARSHAL: plain data) or pickle (PICKLE:
everything else).  Every message is a dict with named fields (the records
below, typed for mypy only: typing is not imported at run time); the
namespaces of a fork request are addressed by type name.

- Control, program -> server: ``ForkRequest`` (with the worker's socket),
  ``StatusRequest``, ``KillRequest``.  Server -> program: ``ControlReply``
  (``{"error": text}`` for a request it could not serve).
- Worker -> program, once, before any call: ``SetupReply``.
- Program -> worker: ``MarshalCall`` (a module-level function named by
  module and qualname) or ``PickleCall``.  Worker -> program: ``CallReply``.
"""

import _socket
import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, TypedDict

    from _pyns_boot import Report

    class ForkRequest(TypedDict):
        request: str  # "fork"
        order: Optional[str]  # gons_order syntax; None: the default order
        paths: Dict[str, str]  # namespace type -> reference, the types to join only
        netns: Optional[str]  # Namespaces.netns(NAME): also take the view of ip netns exec NAME
        main_path: Optional[str]  # the caller's __main__ script, for calls that refer to it
        needs_main: bool  # load that script in the server first (once)
        one_shot: bool  # call_in: the worker serves one call and exits
        sys_path: List[str]  # the caller's sys.path
        keep_imports: bool  # after a mnt join, import from the caller's installation

    class StatusRequest(TypedDict):
        request: str  # "status": the wait status of a worker that ended
        pid: int

    class KillRequest(TypedDict):
        request: str  # "kill": SIGKILL a worker of this server
        pid: int

    class ControlReply(TypedDict, total=False):
        pid: int  # fork: the new worker; kill: the worker
        status: Optional[int]  # status: its wait status, None when unknown
        error: str  # a request the server could not serve

    class SetupReply(TypedDict, total=False):
        outcome: str  # "joined", "join_failed" (report says why) or "setup_failed" (error, traceback)
        report: Report
        error: str
        traceback: str

    class MarshalCall(TypedDict):
        module: str
        qualname: str
        args: Tuple[Any, ...]
        kwargs: Dict[str, Any]

    class PickleCall(TypedDict):
        fn: Any
        args: Tuple[Any, ...]
        kwargs: Dict[str, Any]

    class CallReply(TypedDict, total=False):
        result: Any  # the call returned this
        error: BaseException  # the call raised this (or a stand-in for it) ...
        traceback: str  # ... with this traceback, formatted in the worker


HEADER = 8
FD_SPACE = _socket.CMSG_SPACE(4)

# A call or a call's reply is a tag byte and a body: MARSHAL for plain data
# (marshal is built in: no import on the cold path), PICKLE for everything else.
MARSHAL = b"M"
PICKLE = b"P"


class PeerClosed(EOFError):
    """The other end closed its socket (exited or died)."""


# ---------------------------------------------------------------- frames on a socket object


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


# ---------------------------------------------------------------- frames on a descriptor (the worker's side)


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


# ---------------------------------------------------------------- messages


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
