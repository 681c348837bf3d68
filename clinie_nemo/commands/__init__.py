"""The subcommands of `clinie-nemo`, one module each in this package, and the dispatcher that runs them:
one argparse parser, one subparser per command module.

A command module defines ``NAME``, ``HELP`` (one line), ``EXAMPLES`` (shown at the end of ``--help``),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy libraries (torch, transformers,
matplotlib, submitit) inside ``run`` only, so ``clinie-nemo --help`` stays fast and GPU-free.

Errors from the user's input (:class:`ClinieError`) print a message and exit 2, without a traceback.
When whoever reads stdout goes away (``clinie-nemo stats docs.jsonl | head``) the command stops quietly
with exit code 141 (128 + SIGPIPE, as a tool killed by SIGPIPE), without a BrokenPipeError traceback.

Imports: every stage below (core ... study), each command module lazily in ``run``. Imported by
:mod:`clinie_nemo.demo` (which runs these commands in-process) and :mod:`clinie_nemo.cli` (the console
script, which adds the ``demo`` command on top).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import select
import sys
from collections.abc import Mapping
from types import ModuleType

from clinie_nemo import __version__
from clinie_nemo.core.errors import ClinieError


def command_modules() -> dict[str, ModuleType]:
    """Registry of the subcommands in this package: name -> module, discovered in clinie_nemo/commands/."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return found


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser(modules: Mapping[str, ModuleType] | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The parser of ``modules`` (default: this package's commands), subcommands in name order."""
    modules = dict(sorted((modules if modules is not None else command_modules()).items()))
    parser = argparse.ArgumentParser(
        prog="clinie-nemo",
        description="Clinical notes -> NeMo SFT data -> fine-tuned extractors -> challenge-exact scores.",
        formatter_class=_Formatter,
        epilog="examples:\n  clinie-nemo demo --output demo_out\n"
        "  clinie-nemo convert --format brat --input notes/ --output docs.jsonl\n"
        "  clinie-nemo COMMAND --help",
    )
    parser.add_argument("--version", action="version", version=f"clinie-nemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in modules.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=_Formatter,
                           epilog="examples:\n" + module.EXAMPLES.strip("\n"))
        module.add_arguments(p)
    return parser, modules


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE


def stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll on this platform, or no real stdout
        return True


def main(argv: list[str] | None = None, modules: Mapping[str, ModuleType] | None = None) -> int:
    """Run one subcommand; a closed stdout pipe ends it quietly (see the module docstring)."""
    try:
        try:
            return run_command(argv, modules)
        finally:
            sys.stdout.flush()  # buffered output meets a closed pipe here, not at interpreter exit
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise  # some other pipe broke: a real error, keep its traceback
        # Python's recipe (docs of the signal module, "Note on SIGPIPE"): point stdout at devnull so the
        # interpreter's own flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


def run_command(argv: list[str] | None = None, modules: Mapping[str, ModuleType] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; user errors print one message and return their exit code."""
    parser, modules = build_parser(modules)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except ClinieError as exc:
        print(f"clinie-nemo {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"clinie-nemo {args.command}: interrupted", file=sys.stderr)
        return 130
