"""The `clinie-nemo` console script: one argparse parser, one subcommand per module in
:mod:`clinie_nemo.commands`.

A command module defines ``NAME``, ``HELP`` (one line), ``EXAMPLES`` (shown at the end of ``--help``),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy libraries (torch, transformers,
matplotlib, submitit) inside ``run`` only, so ``clinie-nemo --help`` stays fast and GPU-free.

Errors from the user's input (:class:`ClinieError`) print a message and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from clinie_nemo import __version__, commands
from clinie_nemo.errors import ClinieError


def command_modules() -> dict[str, ModuleType]:
    """Registry of subcommands: name -> module, discovered in clinie_nemo/commands/."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        found[module.NAME] = module
    return found


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    modules = command_modules()
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


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
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
