"""The console script, and the path from a command line to exec.

``secretrun [OPTIONS] -- COMMAND`` sits in front of every container start,
so it is parsed here by hand, without importing click: click alone costs
about as much as all of Python's start-up. Anything else (``check``,
``--help``, a bad option) goes to the click application in ``cli.py``, which
builds the same ``Options`` and calls the same ``run``. A test feeds both
parsers the same command lines.
"""

from __future__ import annotations

import os
import sys
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .errors import SecretrunError, UsageError


class Options(NamedTuple):
    manifest: Optional[str] = None
    profile: Optional[str] = None
    watch: Optional[bool] = None          # None: the manifest's settings.watch
    extra_env: Tuple[Tuple[str, str], ...] = ()
    log_level: Optional[str] = None
    log_format: Optional[str] = None
    argv: Tuple[str, ...] = ()
    env_files: Tuple[str, ...] = ()         # --env-file: dotenv files imported whole


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def split_assignment(text: str) -> Tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise UsageError(f"-e takes NAME=VALUE, not {text!r}")
    return name, value


def options_from_environ(environ) -> Options:
    return Options(manifest=environ.get("SECRETRUN_MANIFEST") or None,
                   profile=environ.get("SECRETRUN_PROFILE") or None,
                   log_level=(environ.get("SECRETRUN_LOG_LEVEL") or "").lower() or None,
                   log_format=(environ.get("SECRETRUN_LOG_FORMAT") or "").lower() or None)


def parse_fast(args: Sequence[str], environ=os.environ) -> Optional[Options]:
    """Parse ``[run] [shared options] -- COMMAND...``; None for anything else,
    which the click application then handles (with its own errors and help)."""
    args = list(args)
    if args and args[0] == "run":
        args = args[1:]
    opts = options_from_environ(environ)
    extra: List[Tuple[str, str]] = []
    env_files: List[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            if i + 1 == len(args):
                return None
            return opts._replace(extra_env=tuple(extra), argv=tuple(args[i + 1:]), env_files=tuple(env_files))
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not eq and len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            name, inline, eq = arg[:2], arg[2:], "="  # -mPATH
        if name in ("--watch", "--no-watch") and not eq:
            opts = opts._replace(watch=name == "--watch")
            i += 1
            continue
        if name not in ("-m", "--manifest", "-p", "--profile", "-e", "--log-level", "--log-format", "--env-file"):
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


def open_session(opts: Options, watch: bool = False, deliver_files: bool = True):
    from . import logs
    from .manifest import load
    from .resolver import Session

    log = logs.configure(opts.log_level, opts.log_format)
    manifest, extras = load(opts.manifest, opts.profile, opts.extra_env, opts.env_files)
    return Session(manifest, extras, os.environ, watch=watch, log=log, deliver_files=deliver_files)


def run(opts: Options) -> int:
    """Resolve, then exec (or supervise, when watching). Returns an exit code
    only when supervising; exec does not return."""
    from . import logs
    from .manifest import load
    from .resolver import Session

    log = logs.configure(opts.log_level, opts.log_format)
    if not opts.argv:
        raise UsageError("no command given: secretrun [OPTIONS] -- COMMAND [ARG...]")
    manifest, extras = load(opts.manifest, opts.profile, opts.extra_env, opts.env_files)
    watch = manifest.settings.watch if opts.watch is None else opts.watch
    session = Session(manifest, extras, os.environ, watch=watch, log=log)
    rendered = session.resolve()
    log.debug("resolved the environment", variables=len(rendered.managed), manifest=manifest.path)
    if watch:
        from .supervise import run as supervise

        try:
            return supervise(session, list(opts.argv), log)
        finally:
            session.close()
    from .process import exec_replace

    # Nothing of ours survives exec: log out of the stores now (a Vault login
    # token would otherwise outlive the run by its whole TTL).
    session.close_providers()
    exec_replace(opts.argv, rendered.env)


def report(error: BaseException, log_format: Optional[str] = None) -> int:
    """Print an error for a person (or as one JSON line) and return its exit code."""
    from . import logs

    log = logs.get()
    if isinstance(error, SecretrunError):
        code = error.code
        problems = getattr(error, "problems", None)
        if (log_format or log.fmt) == "json":
            fields = {"exit_code": code}
            if problems:
                fields["problems"] = [{"kind": p.kind.name.lower(), "message": p.message, "variable": p.variable,
                                       "provider": p.provider, "reference": p.reference, "location": p.location}
                                      for p in problems]
            log.log("error", getattr(error, "title", None) or str(error), **fields)
        else:
            text = str(error)
            sys.stderr.write(log.redact(f"secretrun: {text}") + "\n")
        return code
    # An unexpected failure: the type and where, never the message or locals
    # (an exception's message may quote data it was handling).
    import traceback

    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames)
    sys.stderr.write(f"secretrun: internal error: {type(error).__name__} at {where}\n"
                     "secretrun: please report this; no secret values are shown here\n")
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    opts = parse_fast(args)
    if opts is None:
        from .cli import main as click_main

        return click_main(args)
    try:
        return run(opts)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        if isinstance(exc, SystemExit):
            raise
        return report(exc, opts.log_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
