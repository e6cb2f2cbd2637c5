"""secretrun's own diagnostics: stderr, ``text`` or ``json``, names only.

Messages are written by code that never formats a value into them; the
redactor (``redact.Secrets``, the engine ``mask_output`` uses too) is the
second line of defence: every resolved value is registered with it before
anything is logged, and every line, ours or an SDK's, passes through it.

The stdlib ``logging`` module is not imported on the exec path (it costs
more than the rest of start-up); it is wired up by ``capture_stdlib()`` only
when a network provider is built, so SDK loggers go through the same
redaction and never below WARNING (botocore's DEBUG logs response bodies).
"""

from __future__ import annotations

import _thread
import sys
import time
from typing import Any, Optional

from . import redact

# "notice": a normal event worth seeing at the default level (a restart, a
# reload); shown and hidden with "warning".
LEVELS = {"debug": 10, "info": 20, "notice": 30, "warning": 30, "error": 40}


class Logger:
    def __init__(self, level: str = "warning", fmt: str = "text", stream=None) -> None:
        self.level = LEVELS.get(level, 30)
        self.fmt = fmt
        self.stream = stream
        self.redact = redact.Secrets()   # the one engine (redact.py) that mask_output uses too
        self._lock = _thread.allocate_lock()
        # The keys given to warning_once (a file's path): a file re-read at
        # every poll, or by two providers, is warned about once a process.
        self.warned: set = set()

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.level

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if LEVELS[level] < self.level:
            return
        stream = self.stream or sys.stderr
        if self.fmt == "json":
            import json

            # Fields are redacted before serialising: json.dumps escapes
            # quotes, backslashes and control characters, and the escaped
            # form is not the value any more.
            record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
                      "level": level, "logger": fields.pop("logger", "secretrun"), "msg": self.redact(msg)}
            record.update(self.redact.fields(fields))
            line = json.dumps(record, default=str)
        else:
            extra = " ".join(f"{k}={v}" for k, v in fields.items()
                             if not (k == "variable" and _names(msg, str(v))))
            line = self.redact(f"secretrun: {level}: {msg}" + (f" ({extra})" if extra else ""))
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

    def debug(self, msg: str, **fields: Any) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def notice(self, msg: str, **fields: Any) -> None:
        self.log("notice", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("warning", msg, **fields)

    def warning_once(self, key: str, msg: str, **fields: Any) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.log("warning", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, **fields)


_logger = Logger()
_captured = False
_owns_process = False    # set by configure(): the command line owns the process's logging


def _names(msg: str, word: str) -> bool:
    """Whether ``msg`` already names ``word`` (as a whole word): a text line
    does not repeat "(variable=DB)" after "DB: ...". JSON keeps every field."""
    start = msg.find(word)
    while word and start != -1:
        end = start + len(word)
        if (start == 0 or not _word_char(msg[start - 1])) and (end == len(msg) or not _word_char(msg[end])):
            return True
        start = msg.find(word, start + 1)
    return False


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def get() -> Logger:
    return _logger


def configure(level: Optional[str] = None, fmt: Optional[str] = None) -> Logger:
    """Set up secretrun's diagnostics for the command line, which then owns
    the process's logging (``capture_stdlib`` may take over the root logger).
    Library use (``secretrun.resolve``) never calls this."""
    global _owns_process
    _owns_process = True
    if level:
        _logger.level = LEVELS.get(level.lower(), 30)
    if fmt:
        _logger.fmt = fmt
    return _logger


def capture_stdlib() -> None:
    """Route the stdlib ``logging`` tree (SDKs, our providers) through ours,
    when the command line owns the process. Inside a host application
    (``secretrun.resolve()``) its logging is its own: nothing is changed."""
    global _captured
    if _captured or not _owns_process:
        return
    _captured = True
    import logging

    class _Bridge(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                msg = record.getMessage()
            except Exception:
                msg = str(record.msg)
            level = "debug" if record.levelno < 20 else "info" if record.levelno < 30 else \
                "warning" if record.levelno < 40 else "error"
            name = record.name if record.name.startswith("secretrun") else f"secretrun ({record.name})"
            if _logger.fmt == "json":
                _logger.log(level, msg, logger=record.name)
            else:
                _logger.log(level, f"{name}: {msg}" if name != "secretrun" else msg)

    root = logging.getLogger()
    root.handlers[:] = [_Bridge()]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger("secretrun")
    ours.setLevel(min(_logger.level, logging.WARNING))
    logging.captureWarnings(True)
