"""The `clinie-nemo` console script: every subcommand of :mod:`clinie_nemo.commands` plus ``demo``
(:mod:`clinie_nemo.demo.command`, which sits above the commands because the demo runs them).

The top of the import graph: nothing in the package imports this module.
"""

from __future__ import annotations

import sys
from types import ModuleType

from clinie_nemo import commands
from clinie_nemo.demo import command as demo_command


def command_modules() -> dict[str, ModuleType]:
    """Every subcommand of the console script: name -> module."""
    return {**commands.command_modules(), demo_command.NAME: demo_command}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clinie-nemo` (and `python -m clinie_nemo`)."""
    return commands.main(argv, command_modules())


if __name__ == "__main__":
    sys.exit(main())
