"""`python -m models ...`: see models/cli.py for the commands."""

from __future__ import annotations

from models.cli import main

raise SystemExit(main())
