"""`python -m clinie_nemo` is the `clinie-nemo` console script."""

from __future__ import annotations

from clinie_nemo.cli import main

raise SystemExit(main())
