"""``python_exec``: run model-written Python in a subprocess with limits.

What it does: a fresh ``python -I`` (isolated mode: no user site-packages, no ``PYTHON*``
variables) in a new temporary working directory that is deleted afterwards; a minimal environment
(``PATH``, ``LANG``, ``HOME``/``TMPDIR`` set to the temporary directory; nothing else of the
caller's environment, so no API keys); a wall-clock timeout after which the whole process group
is killed; a memory limit (``RLIMIT_AS``) and a CPU-time limit; a cap on the file size it may
write (``RLIMIT_FSIZE``); stdout and stderr cut at ``max_output_chars``; and, where the system
allows unprivileged network namespaces (``unshare -rn``), no network at all.

What it does NOT isolate (this is not a security sandbox): the code runs as the same user and
can read any file that user can read and write outside the temporary directory (with
``network=False`` on a machine without user namespaces, it can also reach the network; the
result's ``network_isolated`` says which happened). Limits are POSIX ``setrlimit`` limits
(none on Windows). Output is read whole into this process's memory before it is cut, so a
program that prints gigabytes within its timeout costs that much memory here. Run untrusted code in a container or VM when it matters.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from accord.errors import ConfigError
from accord.tools._tool import Tool

__all__ = ["ExecResult", "python_exec", "python_tool", "network_isolation_available"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a :func:`python_exec` run produced."""

    stdout: str
    stderr: str
    exit_code: int | None
    """The process's exit status (negative: killed by that signal; None: it never started)."""
    timed_out: bool = False
    truncated: bool = False
    """stdout or stderr was longer than the limit and was cut."""
    duration_s: float = 0.0
    network_isolated: bool = False
    """True when the code ran in its own network namespace (no network)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@functools.cache
def network_isolation_available() -> bool:
    """True when ``unshare -rn`` works here (unprivileged user and network namespaces)."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    try:
        probe = subprocess.run(
            [unshare, "-rn", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _limits(memory_mb: int, cpu_s: int, file_mb: int) -> None:  # pragma: no cover - in child
    import resource

    os.setsid()
    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    size = file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _prepare(workdir: str, code: str, files: dict[str, str]) -> str:
    """Write ``files`` and the program into ``workdir``; the program's path."""
    root = os.path.realpath(workdir)
    for name, text in files.items():
        target = os.path.realpath(os.path.join(root, name))
        if not target.startswith(root + os.sep):
            raise ConfigError(f"python_exec: file name {name!r} leaves the working directory.")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    script = os.path.join(root, "main.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(code)
    return script


def _cut(data: bytes, limit: int) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    if len(text) > limit:
        return text[:limit] + f"\n[... cut at {limit} characters]", True
    return text, False


async def python_exec(
    code: str,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
    memory_mb: int = 512,
    max_output_chars: int = 20_000,
    stdin: str = "",
    network: bool = False,
    files: dict[str, str] | None = None,
) -> ExecResult:
    """Run Python ``code`` in a limited subprocess (see the module docstring for what is and is
    not isolated) and return its output.

    Args:
        code: the program text.
        timeout: wall-clock seconds before the process group is killed.
        memory_mb: address-space limit of the process.
        max_output_chars: stdout and stderr are each cut at this many characters.
        stdin: text fed to the program's standard input.
        network: allow network access (False: run in a network namespace where available).
        files: extra files written into the working directory first (``{name: text}``), e.g.
            tests that the code should pass.

    Raises:
        ConfigError: a limit is not positive, or a file name leaves the working directory.
    """
    if timeout <= 0 or memory_mb <= 0 or max_output_chars <= 0:
        raise ConfigError("python_exec: timeout, memory_mb and max_output_chars must be positive.")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accord-exec-") as workdir:
        script = await asyncio.to_thread(_prepare, workdir, code, files or {})
        env = {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "HOME": workdir,
            "TMPDIR": workdir,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
        }
        argv = [sys.executable, "-I", script]
        isolated = not network and network_isolation_available()
        if isolated:
            argv = [shutil.which("unshare") or "unshare", "-rn", *argv]
        cpu = max(1, int(timeout) + 1)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=functools.partial(_limits, memory_mb, cpu, 64),
        )
        timed_out = False
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
        except TimeoutError:
            timed_out = True
            _kill(proc.pid)
            out, err = await proc.communicate()
        except BaseException:
            _kill(proc.pid)
            await proc.wait()
            raise
    stdout, cut_out = _cut(out, max_output_chars)
    stderr, cut_err = _cut(err, max_output_chars)
    return ExecResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=proc.returncode,
        timed_out=timed_out,
        truncated=cut_out or cut_err,
        duration_s=time.perf_counter() - started,
        network_isolated=isolated,
    )


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def python_tool(
    *, timeout: float = 10.0, memory_mb: int = 512, max_output_chars: int = 20_000
) -> Tool:
    """:func:`python_exec` as a tool a model can call with one argument, ``code`` (the limits
    are yours, not the model's). Its result is JSON: stdout, stderr, exit_code, timed_out,
    truncated."""

    async def run_python(code: str) -> dict[str, object]:
        """Run a Python program in a fresh, limited subprocess and return what it printed.

        Args:
            code: the complete Python program; print what you need to see.
        """
        result = await python_exec(
            code, timeout=timeout, memory_mb=memory_mb, max_output_chars=max_output_chars
        )
        return {
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "truncated": result.truncated,
        }

    return Tool(run_python, timeout=timeout + 5)
