"""Helpers that run the `clinie-nemo` CLI from tests (a pytest plugin: tests/conftest.py loads it through
``pytest_plugins``; tests import ``cli``, ``cli_subprocess``, ``REPO`` and ``copy_checkout`` from here).

``cli(*args)`` runs ``clinie_nemo.cli.main`` IN this process (no interpreter start-up, no re-import of torch
per call) and returns what ``subprocess.run`` would: a ``CompletedProcess[str]`` with the exit code, stdout and
stderr. It keeps the meaning of a separate process as far as a test can see:

- output: file descriptors 1 and 2 point at temporary files during the call and ``sys.stdout``/``sys.stderr``
  write to them too, so child processes the command starts (torchrun, sbatch, ...) and C-level writes land
  in ``stdout``/``stderr`` as they did; decoded with universal newlines, as ``text=True`` does;
- exit code: ``SystemExit`` gives its code (argparse exits 2 on a bad flag), any other exception gives 1 with
  its traceback in ``stderr`` (so "Traceback not in stderr" still means what it meant);
- process state the commands change is put back afterwards: working directory, ``os.environ`` (``env=`` and
  the commands' own ``setdefault``/``update``), signal handlers, warning filters, torch's thread count and
  RNG, transformers' log verbosity, logging handlers bound to stdout/stderr; the package's own memo caches
  (``functools.cache``/``lru_cache``) are emptied before and after, as a fresh process starts without them.

``cli_subprocess(*args)`` is the old behaviour, ``python -m clinie_nemo`` in a child process; a test uses it
only where the separate process is what it checks (signals, a fresh interpreter, process-wide state that a
pytest process cannot give back, such as a Slurm job inheriting the submitting environment).
"""

from __future__ import annotations

import contextlib
import functools
import io
import locale
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

REPO = Path(__file__).resolve().parents[1]

# The warning set-up of a fresh interpreter (pytest swaps in its own recorder inside each test).
_STARTUP_FILTERS = list(warnings.filters)
_SHOWWARNMSG_IMPL = getattr(warnings, "_showwarnmsg_impl", None)
_SHOWWARNING = getattr(warnings, "_showwarning_orig", warnings.showwarning)
_TORCH_DEFAULT_SEED = 67280421310721  # torch's default_generator seed at start-up (torch.initial_seed())


def _env_with_checkout(env: dict[str, str] | None) -> dict[str, str]:
    """The overrides both helpers apply: this checkout first on PYTHONPATH (children import it), then ``env``."""
    out = {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out.update(env or {})
    return out


def _argv(args: tuple[Any, ...]) -> list[str]:
    return [sys.executable, "-m", "clinie_nemo", *map(str, args)]


def cli_subprocess(*args: Any, cwd: str | Path | None = None, env: dict[str, str] | None = None,
                   timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m clinie_nemo ARGS` in a child process with this checkout first on the path.

    For the tests where the separate process is the point (signals sent to it, its exit status as the OS sees
    it, a fresh interpreter's imports, everything it writes up to its exit). Its users and why:

    - tests/demo/test_demo.py ``quick_demo``: the PHI check reads everything the demo process writes, up to and
      including interpreter shutdown (atexit hooks, "Exception ignored in ..." messages), which only a process
      of its own shows; its minutes are training, not start-up;
    - the Slurm-marked tests (tests/study/*slurm*.py, tests/demo/test_demo_slurm.py): jobs on the cluster are
      submitted by, and inherit the environment of, the process a user runs; their minutes are the cluster's
      jobs, not start-up (and their in-process run was not checked against a cluster in this change).

    Signals (tests/engines/test_generation_resume.py, test_engine_nemo_runtime.py) and a closed stdout pipe
    (tests/commands/test_cli_broken_pipe.py) need a handle on the child, so those tests use Popen directly."""
    return subprocess.run(_argv(args), cwd=cwd, env={**os.environ, **_env_with_checkout(env)},
                          capture_output=True, text=True, timeout=timeout)


def cli(*args: Any, cwd: str | Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``clinie_nemo.cli.main(ARGS)`` in this process, as `python -m clinie_nemo ARGS` would run (see the
    module docstring). ``timeout`` is accepted for the callers' sake; pytest-timeout bounds the test."""
    del timeout
    from clinie_nemo.cli import main

    argv = [str(a) for a in args]
    with _process_state(cwd, _env_with_checkout(env)), _captured_output() as captured:
        code = _exit_code(main, argv)
    return subprocess.CompletedProcess(_argv(args), code, captured["stdout"], captured["stderr"])


def _exit_code(main: Any, argv: list[str]) -> int:
    """The exit status `raise SystemExit(main(argv))` gives a process; an uncaught exception prints its
    traceback to stderr and gives 1, as the interpreter does."""
    try:
        code: Any = main(argv)
    except SystemExit as exc:
        code = exc.code
    except Exception:
        traceback.print_exc()
        return 1
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _decode(raw: bytes) -> str:
    """As ``subprocess.run(text=True)`` decodes: the locale's encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(raw), encoding=locale.getpreferredencoding(False), newline=None).read()


@contextlib.contextmanager
def _captured_output() -> Iterator[dict[str, str]]:
    """fds 1 and 2 and sys.stdout/sys.stderr -> two temporary files; their text lands in the yielded dict."""
    captured: dict[str, str] = {}
    old_streams = sys.stdout, sys.stderr
    for stream in old_streams:
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        saved_fds = os.dup(1), os.dup(2)
        os.dup2(out_file.fileno(), 1)
        os.dup2(err_file.fileno(), 2)
        new_out = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        new_err = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
        sys.stdout, sys.stderr = new_out, new_err
        handlers = _point_log_handlers(old_streams, (new_out, new_err))
        try:
            yield captured
        finally:
            for stream in (new_out, new_err):
                with contextlib.suppress(Exception):
                    stream.flush()
            _restore_log_handlers(handlers, (new_out, new_err), old_streams)
            sys.stdout, sys.stderr = old_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
            new_out.close()
            new_err.close()
            for name, f in (("stdout", out_file), ("stderr", err_file)):
                f.seek(0)
                captured[name] = _decode(f.read())


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def _point_log_handlers(old: tuple[TextIO, TextIO], new: tuple[TextIO, TextIO]) -> dict[logging.StreamHandler, Any]:
    """Handlers bound to this process's stdout/stderr (transformers' own, say) write to the captured ones."""
    real = {id(old[0]): new[0], id(old[1]): new[1], id(sys.__stdout__): new[0], id(sys.__stderr__): new[1]}
    changed: dict[logging.StreamHandler, Any] = {}
    for handler in _stream_handlers():
        target = real.get(id(handler.stream))
        if target is not None:
            changed[handler] = _set_stream(handler, target)
    return changed


def _restore_log_handlers(changed: dict[logging.StreamHandler, Any], new: tuple[TextIO, TextIO],
                          old: tuple[TextIO, TextIO]) -> None:
    """Put back what :func:`_point_log_handlers` changed; a handler made during the call on a captured stream
    (closed next) moves to the stream it would have had outside the call."""
    for handler in _stream_handlers():
        if handler in changed:
            _set_stream(handler, changed[handler])
        elif handler.stream is new[0] or handler.stream is new[1]:
            _set_stream(handler, old[0] if handler.stream is new[0] else old[1])


def _set_stream(handler: logging.StreamHandler, stream: Any) -> Any:
    """``handler.setStream`` without its flush of the old stream (which may be closed already)."""
    with handler.lock:  # type: ignore[union-attr]
        old, handler.stream = handler.stream, stream
    return old


def clear_package_caches() -> None:
    """Empty every memo cache of the loaded clinie_nemo modules (a fresh process starts with none)."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "clinie_nemo" or name.startswith("clinie_nemo.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()
    tokens = sys.modules.get("clinie_nemo.core.tokens")
    if tokens is not None:
        tokens._CACHE.clear()


@contextlib.contextmanager
def _process_state(cwd: str | Path | None, env: dict[str, str]) -> Iterator[None]:
    """cwd, environment, signals, warnings, RNGs and library settings as a fresh process has them; restored
    afterwards (see the module docstring)."""
    old_cwd = os.getcwd()
    old_env = dict(os.environ)
    old_signals = _signal_handlers()
    old_random = random.getstate()
    libraries = _LibraryState()
    clear_package_caches()
    try:
        with warnings.catch_warnings():
            warnings.filters[:] = _STARTUP_FILTERS
            getattr(warnings, "_filters_mutated", lambda: None)()
            warnings.showwarning = _SHOWWARNING
            if _SHOWWARNMSG_IMPL is not None:
                warnings._showwarnmsg_impl = _SHOWWARNMSG_IMPL  # type: ignore[attr-defined]
            os.environ.update(env)
            if cwd is not None:
                os.chdir(cwd)
            libraries.fresh()
            yield
    finally:
        os.chdir(old_cwd)
        for key in set(os.environ) - set(old_env):
            del os.environ[key]
        for key, value in old_env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        for signum, handler in old_signals.items():
            if signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)
        random.setstate(old_random)
        libraries.restore()
        clear_package_caches()


def _signal_handlers() -> dict[int, Any]:
    handlers = {}
    for signum in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            handler = signal.getsignal(signum)
            if handler is not None:
                handlers[signum] = handler
    return handlers


class _LibraryState:
    """torch's thread count and global RNG (reset to its start-up seed for the call), numpy's RNG,
    transformers' verbosity and progress bars: saved before the call and put back after it."""

    def __init__(self) -> None:
        torch = sys.modules.get("torch")
        self.torch = (torch.get_num_threads(), torch.random.get_rng_state()) if torch is not None else None
        np = sys.modules.get("numpy")
        self.numpy_rng = np.random.get_state() if np is not None else None
        hf = sys.modules.get("transformers.utils.logging")
        self.hf = (hf.get_verbosity(), hf.is_progress_bar_enabled()) if hf is not None else None

    def fresh(self) -> None:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(_TORCH_DEFAULT_SEED)

    def restore(self) -> None:
        torch = sys.modules.get("torch")
        if torch is not None and self.torch is not None:
            if torch.get_num_threads() != self.torch[0]:
                torch.set_num_threads(self.torch[0])
            torch.random.set_rng_state(self.torch[1])
        elif torch is not None:  # imported during the call: its RNG as a fresh import has it
            torch.manual_seed(_TORCH_DEFAULT_SEED)
        np = sys.modules.get("numpy")
        if np is not None and self.numpy_rng is not None:
            np.random.set_state(self.numpy_rng)
        hf = sys.modules.get("transformers.utils.logging")
        if hf is not None and self.hf is not None:
            hf.set_verbosity(self.hf[0])
            if hf.is_progress_bar_enabled() != self.hf[1]:
                (hf.enable_progress_bar if self.hf[1] else hf.disable_progress_bar)()
        elif hf is not None and hasattr(hf, "_get_default_logging_level"):  # imported during the call
            hf.set_verbosity(hf._get_default_logging_level())


def copy_checkout(dest: Path) -> Path:
    """Tracked plus untracked-but-not-ignored files (what a clone or a `docker build` context has: no build outputs, no venvs)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture
def run_cli():
    return cli
