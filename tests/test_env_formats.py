"""``pyns-boot env`` output, fed to its real consumers, with paths that need care.

Every path here is a real namespace reference (a bind mount of a holder's
namespace file) whose name holds spaces, quotes, ``$``, backslashes, ``=``,
a newline, a carriage return or non-UTF-8 bytes.  Each format goes to the
program that reads it, and the value that arrives must be the path, byte for
byte:

* ``--format shell`` (export lines): ``eval`` in dash (sh) and bash;
* ``--format env`` (KEY=VALUE lines): the docker client's own env-file parser
  (``docker create --env-file`` against a stand-in engine on a unix socket that
  records the create request; the client parses the file before it talks to an
  engine), bash ``mapfile`` + ``env``, and a reader written from docker's
  documented rules;
* ``--format json``: ``json.loads``.

A value a format cannot carry is refused with exit status 1, a message naming
the variable and pointing to ``--format shell``, and nothing on stdout.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import subprocess
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nsutil import CHILD_TIMEOUT, PROBE, Holder, Venv, clean_env, fresh_cwd, parse_probe, world_readable_dir

# name (the test id) -> the file name of the reference, as bytes
AWKWARD = {
    "space": b"dir with space/net",
    "quotes": b'it\'s "quoted"',
    "dollar": b"$HOME ${x} $(id) `id`",
    "backslash": b"back\\slash\\n\\",
    "equals": b"a=b==c",
    "edge-blanks": b" leading and trailing \t",
    "hash": b"#not a comment",
    "utf8": b"caf\xc3\xa9 \xe2\x82\xac",
    "newline": b"new\nline",
    "carriage-return": b"ends in cr\r",
    "non-utf8": b"latin1 \xe9 and \xff\xfe",
}
TYPE = "net"

# What each format can carry (docs/cli.md, "pyns-boot env: output formats").
ENV_REFUSES = {"newline": "holds a newline", "carriage-return": "ends in a carriage return", "non-utf8": "UTF-8"}
JSON_REFUSES = {"non-utf8": "is not valid UTF-8"}


@pytest.fixture(scope="module")
def references() -> Iterator[tuple[Holder, dict[str, bytes]]]:
    """A holder's net namespace, bind-mounted at every awkward path."""
    holder = Holder((TYPE,))
    base = world_readable_dir("pyns-boot-envfmt-")
    mounted: list[bytes] = []
    paths: dict[str, bytes] = {}
    try:
        for name, relative in AWKWARD.items():
            path = os.fsencode(base) + b"/" + relative
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "wb").close()
            subprocess.run([b"mount", b"--bind", os.fsencode(holder.ref(TYPE)), path], check=True)
            mounted.append(path)
            paths[name] = path
        yield holder, paths
    finally:
        for path in mounted:
            subprocess.run([b"umount", path], check=False)
        shutil.rmtree(base, ignore_errors=True)
        holder.stop()


def env_command(venv: Venv, path: bytes, fmt: str) -> subprocess.CompletedProcess[bytes]:
    command = [os.fsencode(venv.path / "bin" / "pyns-boot"), b"env", b"--net", path, b"--format", fmt.encode()]
    return subprocess.run(
        command, env=clean_env(), capture_output=True, timeout=CHILD_TIMEOUT, cwd=fresh_cwd(), stdin=subprocess.DEVNULL
    )


_outputs: dict[tuple[str, bytes, str], bytes] = {}


def output(venv: Venv, path: bytes, fmt: str) -> bytes:
    """pyns-boot env --net PATH --format FMT, which must succeed (once per path and format: consumers share it)."""
    key = (venv.python, path, fmt)
    if key not in _outputs:
        result = env_command(venv, path, fmt)
        assert result.returncode == 0, result.stderr
        assert result.stderr == b""
        _outputs[key] = result.stdout
    return _outputs[key]


def representable(refuses: dict[str, str]) -> list[str]:
    return [n for n in AWKWARD if n not in refuses]


# ---------------------------------------------------------------- shell: eval in sh and bash


@pytest.mark.parametrize("shell", ["dash", "bash"])
@pytest.mark.parametrize("name", list(AWKWARD))
def test_shell_format_evals_to_the_path(
    hook_venv: Venv, references: tuple[Holder, dict[str, bytes]], name: str, shell: str
) -> None:
    _, paths = references
    text = output(hook_venv, paths[name], "shell")
    # the variable as the shell has it after eval, written back out unchanged
    read_back = subprocess.run(
        [shell, "-c", 'eval "$1" && printf %s "$gons_net"', shell, text],
        capture_output=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert read_back.returncode == 0, read_back.stderr
    assert read_back.stdout == paths[name]


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_shell_format_moves_the_next_python(
    hook_venv: Venv, references: tuple[Holder, dict[str, bytes]], shell: str
) -> None:
    holder, paths = references
    text = output(hook_venv, paths["non-utf8"], "shell")
    script = b'eval "$1" && exec "$2" -c "$PROBE"'
    child = subprocess.run(
        [shell.encode(), b"-c", script, b"sh", text, os.fsencode(hook_venv.python)],
        env=clean_env(PROBE=PROBE),
        capture_output=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert child.returncode == 0, child.stderr
    report = parse_probe(child.stdout.decode())
    assert report["links"]["net"] == holder.link("net")
    assert os.fsencode(report["status"]["namespaces"]["net"]["path"]) == paths["non-utf8"]


# ---------------------------------------------------------------- env: KEY=VALUE lines


def read_env_file(data: bytes) -> dict[bytes, bytes]:
    """An env file read by docker's documented rules (docs.docker.com, ``docker run --env-file``;
    docker/cli opts/envfile.go): UTF-8 only, one variable per line, a line ends at LF (a CR
    right before it is dropped), leading whitespace is trimmed, lines starting with ``#`` and
    blank lines are skipped, and the value is everything after the first ``=``, verbatim: no
    quotes, no escapes, no expansion."""
    data.decode("utf-8")  # docker: "invalid utf8 bytes at line N"
    variables: dict[bytes, bytes] = {}
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        line = line.lstrip()
        if not line or line.startswith(b"#"):
            continue
        key, has_value, value = line.partition(b"=")
        assert has_value and key and not any(c in key for c in b" \t"), line
        variables[key] = value
    return variables


class _FakeEngine(http.server.BaseHTTPRequestHandler):
    """Just enough of the Docker Engine API for ``docker create``: it records the create request."""

    protocol_version = "HTTP/1.1"
    server: _EngineServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", "1.45")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # /_ping
        self._reply(200, b"")

    def do_GET(self) -> None:
        self._reply(200, b"OK")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/containers/create" in self.path:
            self.server.created.append(json.loads(body))
            self._reply(201, b'{"Id": "0123456789ab", "Warnings": []}')
        else:
            self._reply(404, b'{"message": "not in this stand-in"}')


class _EngineServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    created: list[dict[str, object]]


@pytest.fixture(scope="module")
def docker_create(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], list[str]]]:
    """docker create --env-file FILE, against the stand-in engine: the Env list the client sent."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client here: the env-file rules are checked by read_env_file alone")
    socket_path = tmp_path_factory.mktemp("engine") / "docker.sock"
    server = _EngineServer(str(socket_path), _FakeEngine)
    server.created = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def create(env_file: Path) -> list[str]:
        before = len(server.created)
        result = subprocess.run(
            [docker, "create", "--env-file", str(env_file), "pyns-boot-test-image"],
            env=clean_env(DOCKER_HOST=f"unix://{socket_path}", DOCKER_CONFIG=str(socket_path.parent)),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            cwd=fresh_cwd(),
        )
        assert result.returncode == 0, result.stderr
        assert len(server.created) == before + 1
        env = server.created[-1]["Env"]
        assert isinstance(env, list)
        return env

    yield create
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", representable(ENV_REFUSES))
def test_env_format_read_by_docker_rules(
    hook_venv: Venv, references: tuple[Holder, dict[str, bytes]], name: str
) -> None:
    _, paths = references
    assert read_env_file(output(hook_venv, paths[name], "env")) == {b"gons_net": paths[name]}


@pytest.mark.parametrize("name", representable(ENV_REFUSES))
def test_env_format_read_by_the_docker_client(
    hook_venv: Venv,
    references: tuple[Holder, dict[str, bytes]],
    docker_create: Callable[[Path], list[str]],
    tmp_path: Path,
    name: str,
) -> None:
    _, paths = references
    env_file = tmp_path / "gons.env"
    env_file.write_bytes(output(hook_venv, paths[name], "env"))
    assert [item.encode("utf-8") for item in docker_create(env_file)] == [b"gons_net=" + paths[name]]


def test_the_docker_client_refuses_non_utf8_env_files(
    docker_create: Callable[[Path], list[str]], tmp_path: Path
) -> None:
    # Why --format env refuses such values: docker would not read the file.
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(b"gons_net=/tmp/\xff\n")
    result = subprocess.run(
        ["docker", "create", "--env-file", str(env_file), "pyns-boot-test-image"],
        env=clean_env(DOCKER_HOST="unix:///nonexistent/pyns-boot-test.sock"),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert result.returncode != 0 and "invalid utf8" in result.stderr


@pytest.mark.parametrize("name", representable(ENV_REFUSES))
def test_env_format_lines_as_env_arguments(
    hook_venv: Venv, references: tuple[Holder, dict[str, bytes]], tmp_path: Path, name: str
) -> None:
    # Each line one argument of env(1), read verbatim by bash's mapfile: no splitting, no expansion.
    _, paths = references
    env_file = tmp_path / "gons.env"
    env_file.write_bytes(output(hook_venv, paths[name], "env"))
    read_back = subprocess.run(
        ["bash", "-c", 'mapfile -t lines < "$1" && env -i "${lines[@]}" printenv gons_net', "bash", str(env_file)],
        capture_output=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert read_back.returncode == 0, read_back.stderr
    assert read_back.stdout == paths[name] + b"\n"


def test_env_format_moves_the_next_python(hook_venv: Venv, references: tuple[Holder, dict[str, bytes]]) -> None:
    holder, paths = references
    lines = output(hook_venv, paths["dollar"], "env").splitlines()
    child = subprocess.run(
        [b"env", *lines, os.fsencode(hook_venv.python), b"-c", PROBE.encode()],
        env=clean_env(),
        capture_output=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert child.returncode == 0, child.stderr
    assert parse_probe(child.stdout.decode())["links"]["net"] == holder.link("net")


# ---------------------------------------------------------------- json


@pytest.mark.parametrize("name", representable(JSON_REFUSES))
def test_json_format_loads_to_the_path(hook_venv: Venv, references: tuple[Holder, dict[str, bytes]], name: str) -> None:
    _, paths = references
    loaded = json.loads(output(hook_venv, paths[name], "json"))
    assert {k: v.encode("utf-8") for k, v in loaded.items()} == {"gons_net": paths[name]}


# ---------------------------------------------------------------- what a format cannot carry


@pytest.mark.parametrize(
    "fmt, name, reason",
    [("env", name, reason) for name, reason in ENV_REFUSES.items()]
    + [("json", name, reason) for name, reason in JSON_REFUSES.items()],
)
def test_unrepresentable_values_are_refused(
    hook_venv: Venv, references: tuple[Holder, dict[str, bytes]], fmt: str, name: str, reason: str
) -> None:
    _, paths = references
    result = env_command(hook_venv, paths[name], fmt)
    assert result.returncode == 1 and result.stdout == b""
    message = result.stderr.decode("utf-8")
    assert message.startswith("pyns-boot: gons_net=") and message.count("\n") == 1, message
    assert f"cannot be written in --format {fmt}" in message and reason in message
    assert message.endswith("; use --format shell (eval) instead\n")
    # the path is shown, escaped, so that the user can tell which one
    assert repr(paths[name])[2:-1] in message or repr(paths[name].decode("utf-8"))[1:-1] in message


# ---------------------------------------------------------------- the formatter alone (unit layer)
# The same awkward values, given to pyns_boot.cli.format_env as the command line gives them (bytes
# that are not UTF-8 as surrogate escapes): no namespace, no venv, any user.  The tests above feed
# real references through the installed command.


@pytest.mark.unit
@pytest.mark.parametrize("name", list(AWKWARD))
def test_format_env_shell_evals_to_the_value(name: str) -> None:
    from pyns_boot.cli import format_env

    value = b"/run/netns/" + AWKWARD[name]
    text = format_env({"gons_net": os.fsdecode(value)}, "shell")
    read_back = subprocess.run(
        ["sh", "-c", 'eval "$1" && printf %s "$gons_net"', "sh", text], capture_output=True, timeout=CHILD_TIMEOUT
    )
    assert read_back.returncode == 0, read_back.stderr
    assert read_back.stdout == value


@pytest.mark.unit
@pytest.mark.parametrize("fmt, refuses", [("env", ENV_REFUSES), ("json", JSON_REFUSES)])
@pytest.mark.parametrize("name", list(AWKWARD))
def test_format_env_env_and_json_carry_the_value_or_refuse(fmt: str, refuses: dict[str, str], name: str) -> None:
    from pyns_boot._errors import CommandError
    from pyns_boot.cli import format_env

    value = b"/run/netns/" + AWKWARD[name]
    variables = {"gons_net": os.fsdecode(value), "gons_uts": "/proc/1/ns/uts"}
    if name in refuses:
        with pytest.raises(CommandError) as caught:
            format_env(variables, fmt)
        message = str(caught.value)
        assert message.startswith("gons_net=") and refuses[name] in message, message
        assert f"cannot be written in --format {fmt}" in message
        assert message.endswith("use --format shell (eval) instead")
        return
    data = format_env(variables, fmt)
    if fmt == "env":
        assert read_env_file(data) == {b"gons_net": value, b"gons_uts": b"/proc/1/ns/uts"}
    else:
        assert json.loads(data) == {"gons_net": value.decode("utf-8"), "gons_uts": "/proc/1/ns/uts"}
