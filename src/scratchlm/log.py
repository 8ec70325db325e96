"""Structured logs: key=value lines for people, one JSON object per line for machines.

Handles: the level of the `scratchlm` logger (argument, else $SCRATCHLM_LOG, else INFO), the two
formats on stderr, and records that carry fields (`log_metrics`); plain `logger.warning("...")`
messages render in both formats too. Does not handle: log files, rotation or colour.

    event=pretrain epoch=3 loss=2.41 grad_norm=0.83 lr=0.0005            (text, INFO)
    level=warning msg="vocabulary is small"                             (text, other levels)
    {"time": "...", "level": "info", "event": "pretrain", "epoch": 3, "loss": 2.4103...}   (json)
"""

import json
import logging
import math
import os
import sys
from datetime import UTC, datetime

import numpy as np

from .errors import ConfigError

logger = logging.getLogger("scratchlm")

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")


def setup_logging(level: str | None = None, fmt: str = "text") -> logging.Logger:
    """Send the `scratchlm` logger's records to stderr in `fmt`, at `level` or $SCRATCHLM_LOG."""
    source = "the log level"
    if level is None:
        level, source = os.environ.get("SCRATCHLM_LOG") or "info", "SCRATCHLM_LOG"
    if level.lower() not in LEVELS:
        raise ConfigError(f"invalid {source} {level!r}: use one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ConfigError(f"invalid log format {fmt!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    # Replacing (not adding) the handler makes a second call reconfigure instead of doubling every
    # line; not propagating keeps the root logger from printing our records a second time.
    logger.handlers = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def log_metrics(event: str, **fields) -> None:
    """Log one structured INFO record, e.g. `log_metrics("pretrain", epoch=3, loss=2.41)`."""
    # The fields travel in one `extra` entry rather than one each, so a field may be called
    # "name" or "msg" without clashing with the attributes of logging.LogRecord.
    logger.info(event, extra={"fields": fields})


class TextFormatter(logging.Formatter):
    """`[level=... ]event=... key=value ...`; INFO, the common case, leaves out its level."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [] if record.levelno == logging.INFO else [f"level={record.levelname.lower()}"]
        fields = getattr(record, "fields", None)
        if fields is None:
            parts.append(f"msg={_text_value(record.getMessage())}")
        else:
            parts.append(f"event={_text_value(record.getMessage())}")
            parts += [f"{key}={_text_value(value)}" for key, value in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, then `msg` (plain records) or `event` and fields."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        obj = {"time": time.replace("+00:00", "Z"), "level": record.levelname.lower()}
        fields = getattr(record, "fields", None)
        if fields is None:
            obj["msg"] = record.getMessage()
        else:
            obj["event"] = record.getMessage()
            obj.update({key: _json_value(value) for key, value in fields.items()})
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def _text_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    text = str(value)
    # Quote only when needed, so numbers and simple words stay bare and the line stays short.
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _json_value(value):
    """A value JSON can carry: numpy scalars become Python numbers, NaN and inf become text
    ("nan", "inf"), because bare NaN is not valid JSON and a diverged loss must stay readable."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
