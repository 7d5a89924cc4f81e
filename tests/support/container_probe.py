"""What a Python process sees of where it runs: run inside a container and on the host, then compared.

Stdlib only and self-contained: tests/test_containers.py runs this file's
text with ``python -c`` (the hook, the CLI) and calls :func:`facts` through
call_in and NamespaceExecutor workers (which import it after their joins).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from typing import Any

#: Shared libraries whose (device, inode) tells the host's copy from the container's.
LIBRARIES = (
    "libc.so.6",
    "libssl.so.3",
    "libcrypto.so.3",
    "libsqlite3.so.0",
    "libffi.so.8",
    "liblzma.so.5",
    "libz.so.1",
)


def _mapped() -> dict[str, str]:
    """basename -> 'major:minor inode' of the shared libraries this process has mapped."""
    found: dict[str, str] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6:
                name = os.path.basename(fields[5].strip())
                if name in LIBRARIES:
                    found[name] = f"{fields[3]} {fields[4]}"
    return found


def _imports() -> dict[str, Any]:
    """Import the extension modules the issue names and use each once; their libraries' versions."""
    import ctypes
    import decimal
    import hashlib
    import lzma
    import sqlite3
    import ssl
    import zlib

    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    ssl.create_default_context()
    with sqlite3.connect(":memory:") as db:
        answer = db.execute("select 6 * 7").fetchone()[0]
    return {
        "ssl": ssl.OPENSSL_VERSION,
        "sqlite3": sqlite3.sqlite_version,
        "sqlite3_answer": answer,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "glibc": libc.gnu_get_libc_version().decode(),
        "lzma_roundtrip": lzma.decompress(lzma.compress(b"pyns")) == b"pyns",
        "decimal": str(decimal.Decimal(1) / decimal.Decimal(7)),
        "sha256": hashlib.sha256(b"pyns").hexdigest(),
    }


def facts() -> dict[str, Any]:
    out: dict[str, Any] = {"pid": os.getpid()}
    out["proc_self"] = os.readlink("/proc/self")
    try:
        with open("/proc/1/cmdline", "rb") as f:
            out["init"] = f.read().split(b"\0")[0].decode()
    except OSError as error:
        out["init"] = f"error: {error}"
    out["hostname"] = socket.gethostname()
    with open("/etc/os-release") as f:
        out["os_release"] = f.read()
    out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    out["links"] = {t: os.readlink("/proc/self/ns/" + t) for t in ("ipc", "mnt", "net", "pid", "uts")}
    try:
        out["imports"] = _imports()
    except Exception as error:  # reported, not raised: the test shows what failed
        out["imports"] = f"{type(error).__name__}: {error}"
    out["libraries"] = _mapped()
    cat = subprocess.run(["cat", "/etc/os-release"], capture_output=True, text=True, check=False)
    out["cat"] = cat.stdout if cat.returncode == 0 else f"exit {cat.returncode}: {cat.stderr}"
    return out


if __name__ == "__main__":
    print("PROBE " + json.dumps(facts()))
