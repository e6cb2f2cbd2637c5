"""The console script, and the path from a command line to exec.

``secretrun [OPTIONS] -- COMMAND`` sits in front of every container start,
so it is parsed here by hand, without importing click: click alone costs
about as much as all of Python's start-up. Anything else (``check``,
``--help``, a bad option) goes to the click application in ``cli``, which
builds the same ``Options`` and calls the same ``app.run``. A test feeds
both parsers the same command lines. Errors become exit codes in
``app.report``.
"""

from __future__ import annotations

import os
import sys
from typing import List, Mapping, Optional, Sequence, Tuple

from .app import LOG_FORMATS, LOG_LEVELS, Options, report, run, split_assignment


def options_from_environ(environ: Mapping[str, str]) -> Options:
    return Options(manifest=environ.get("SECRETRUN_MANIFEST") or None,
                   profile=environ.get("SECRETRUN_PROFILE") or None,
                   log_level=(environ.get("SECRETRUN_LOG_LEVEL") or "").lower() or None,
                   log_format=(environ.get("SECRETRUN_LOG_FORMAT") or "").lower() or None)


def parse_fast(args: Sequence[str], environ: Mapping[str, str] = os.environ) -> Optional[Options]:
    """Parse ``[run] [shared options] -- COMMAND...``; None for anything else,
    which the click application then handles (with its own errors and help)."""
    args = list(args)
    if args and args[0] == "run":
        args = args[1:]
    opts = options_from_environ(environ)
    extra: List[Tuple[str, str]] = []
    listen: List[str] = []
    env_files: List[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            if i + 1 == len(args):
                return None
            return opts._replace(extra_env=tuple(extra), argv=tuple(args[i + 1:]), listen=tuple(listen),
                                 env_files=tuple(env_files))
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not eq and len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            name, inline, eq = arg[:2], arg[2:], "="  # -mPATH
        if name in ("--watch", "--no-watch") and not eq:
            opts = opts._replace(watch=name == "--watch")
            i += 1
            continue
        if name not in ("-m", "--manifest", "-p", "--profile", "-e", "--log-level", "--log-format", "--user",
                        "--listen", "--env-file"):
            return None
        if eq:
            value = inline
            i += 1
        elif i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            return None
        if name in ("-m", "--manifest"):
            opts = opts._replace(manifest=value)
        elif name in ("-p", "--profile"):
            opts = opts._replace(profile=value)
        elif name == "--user":
            opts = opts._replace(user=value)
        elif name == "--listen":
            listen.append(value)
        elif name == "--env-file":
            env_files.append(value)
        elif name == "-e":
            if "=" not in value or value.startswith("="):
                return None
            extra.append(split_assignment(value))
        elif name == "--log-level":
            if value.lower() not in LOG_LEVELS:
                return None
            opts = opts._replace(log_level=value.lower())
        else:
            if value.lower() not in LOG_FORMATS:
                return None
            opts = opts._replace(log_format=value.lower())
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    opts = parse_fast(args)
    if opts is None:
        from .cli import main as click_main

        return click_main(args)
    try:
        return run(opts)
    except BaseException as exc:  # noqa: BLE001 - app.report is where errors become exit codes
        return report(exc, opts.log_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
