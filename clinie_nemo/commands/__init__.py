"""Subcommands of `clinie-nemo`, one module each (see :mod:`clinie_nemo.cli` for the contract)."""
