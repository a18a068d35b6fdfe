"""Our loggers ("summarizer" and its children) write JSON lines, or text for a terminal.

BentoML configures its own and the root logger before it imports the service; ours get their
own handler and do not propagate, so a record is written once, in one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

ROOT = "summarizer"


def configure_logging(fmt: Literal["json", "text"], level: str = "INFO") -> logging.Logger:
    """Idempotent: each worker imports the service once, but tests and `bentoml build` may repeat it."""
    logger = logging.getLogger(ROOT)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        # Fields of `extra=` become keys; the message stays as the human summary.
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.handlers = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger
