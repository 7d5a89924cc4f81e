"""Run the pyns-boot command of a venv as a real child process."""

from __future__ import annotations

import subprocess
from typing import Mapping, Sequence

from nsutil import CHILD_TIMEOUT, Venv, clean_env, fresh_cwd


def pyns_boot(
    venv: Venv,
    *args: str,
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
    module: bool = False,
    cwd: str | None = None,
    python_args: Sequence[str] = (),
    timeout: float = CHILD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """venv/bin/pyns-boot ARGS (or venv/bin/python -m pyns_boot ARGS), with a clean environment."""
    command = [venv.python, *python_args, "-m", "pyns_boot"] if module else [str(venv.path / "bin" / "pyns-boot")]
    return subprocess.run(
        [*wrapper, *command, *args],
        env=clean_env(**dict(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or fresh_cwd(),
        stdin=subprocess.DEVNULL,
    )


def clear_command(venv: Venv) -> str:
    """The way out of a stale shell that a hint names for a program of venv, whose bin/ is not on PATH."""
    return 'eval "$({} env --clear)"'.format(venv.path / "bin" / "pyns-boot")
