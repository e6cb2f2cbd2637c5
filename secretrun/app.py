"""The application layer: what both command-line parsers call.

``launch`` (the hand parser of the exec path) and ``cli`` (click, for
everything else) build the same ``Options`` and call ``run`` or
``open_session`` here; whatever they raise comes back through ``report``,
the one place an error becomes a message and an exit code. This module
imports neither parser, so the two entries never import each other's
service layer.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple, Optional, Tuple

from . import exitcodes
from .errors import SecretrunError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .resolver import Session


class Options(NamedTuple):
    manifest: Optional[str] = None
    profile: Optional[str] = None
    watch: Optional[bool] = None          # None: the manifest's settings.watch
    extra_env: Tuple[Tuple[str, str], ...] = ()
    log_level: Optional[str] = None
    log_format: Optional[str] = None
    argv: Tuple[str, ...] = ()
    user: Optional[str] = None            # None: the manifest's settings.user
    listen: Tuple[str, ...] = ()          # --listen, repeatable; () = the manifest's settings.listen
    env_files: Tuple[str, ...] = ()       # --env-file: dotenv files imported whole


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


class Reported(SecretrunError):
    """A failure the command has already shown (``check --format json``
    printed its problems): exit with ``code``, print nothing more."""

    def __init__(self, code: int) -> None:
        super().__init__("")
        self._code = code

    @property
    def code(self) -> int:
        return self._code


def split_assignment(text: str) -> Tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise UsageError(f"-e takes NAME=VALUE, not {text!r}")
    return name, value


def open_session(opts: Options, watch: bool = False, deliver_files: bool = True) -> "Session":
    from . import logs
    from .manifest import load
    from .resolver import Session

    log = logs.configure(opts.log_level, opts.log_format)
    manifest = load(opts.manifest, opts.profile, opts.extra_env, opts.env_files)
    return Session(manifest, os.environ, watch=watch, log=log, deliver_files=deliver_files)


def run(opts: Options) -> int:
    """Resolve, then exec (or supervise, when watching). Returns an exit code
    only when supervising; exec does not return."""
    from . import logs, stopguard
    from .manifest import load
    from .process import require_command
    from .resolver import Session

    stopguard.arm()   # before the first resolution: a SIGTERM now starts nothing
    log = logs.configure(opts.log_level, opts.log_format)
    require_command(opts.argv)
    manifest = load(opts.manifest, opts.profile, opts.extra_env, opts.env_files)
    watch = manifest.settings.watch if opts.watch is None else opts.watch
    refuse_unmasked(manifest, watch)
    listeners = bind_listeners(opts, manifest.settings, log)
    run_as = None
    if opts.user or manifest.settings.user:
        from .runas import for_run

        run_as = for_run(manifest.settings, opts.user, manifest.path)
        manifest = manifest._replace(settings=manifest.settings._replace(user=opts.user or manifest.settings.user))
    if watch:
        # Before any store is contacted: the command (same uid) must not read
        # our credentials from /proc/<pid>/environ or /proc/<pid>/mem.
        from .hardening import make_undumpable

        if not make_undumpable():
            log.debug("could not make the supervisor non-dumpable (not Linux?)")
    session = Session(manifest, os.environ, watch=watch, log=log, run_as=run_as)
    rendered = session.resolve()
    log.debug("resolved the environment", variables=len(rendered.managed), manifest=manifest.path)
    if watch:
        from .supervise import run as supervise

        try:
            return supervise(session, list(opts.argv), log, listeners=listeners)
        finally:
            stopguard.disarm()
            session.close()
            if listeners:
                listeners.close()
    from .process import exec_replace

    # Nothing of ours survives exec: log out of the stores now (a Vault login
    # token would otherwise outlive the run by its whole TTL).
    session.close_providers()
    env = listen_for_exec(listeners, rendered.env) if listeners else rendered.env
    if run_as is not None:
        from .runas import drop

        env = run_as.child_env(env)
        drop(run_as)
    exec_replace(opts.argv, env)


def refuse_unmasked(manifest, watch: bool) -> None:
    """``mask_output`` only works with secretrun in the output's path, i.e.
    watching; exec would hand the command our stdout unfiltered. Refused
    (78) before anything is fetched: masking never silently fails open."""
    if watch or not getattr(manifest.settings, "mask_output", False):
        return
    from .errors import Kind, ManifestError, Problem

    raise ManifestError([Problem(Kind.MANIFEST, "settings.mask_output = true needs watch mode (--watch or "
                                 "settings.watch = true): without it secretrun replaces itself with the "
                                 "command and cannot mask its output", location=manifest.path)])


def bind_listeners(opts: Options, settings, log):
    """The sockets of ``--listen`` (or else ``settings.listen``), bound
    before resolving, so a port in use fails at once; None without any."""
    texts = opts.listen or getattr(settings, "listen", ())
    if not texts:
        return None
    from .sockets import bind_all, parse_all

    try:
        addresses = parse_all(texts)
    except ValueError as exc:   # settings.listen was checked with the manifest
        raise UsageError(f"--listen: {exc}") from None
    listeners = bind_all(addresses)
    log.debug("listening for the command", addresses=", ".join(a.text for a in addresses))
    return listeners


def listen_for_exec(listeners, env):
    """Exec mode: the sockets at fds 3, 4, ... of this process, which the
    command becomes, so ``LISTEN_PID`` is our own PID."""
    from .sockets import child_env

    listeners.install_for_exec()
    return child_env(env, listeners, os.getpid())


def report(error: BaseException, log_format: Optional[str] = None) -> int:
    """Show ``error`` to a person (or as one JSON line) and return its exit
    code (``exitcodes.for_error``). Both entries send every error here."""
    from .stopguard import StopRequested, exit_stopped

    if isinstance(error, StopRequested):
        exit_stopped(error)   # at once: a fetch thread may still wait on a slow store
    code = exitcodes.for_error(error)
    if isinstance(error, (KeyboardInterrupt, SystemExit, Reported)):
        return code
    click = sys.modules.get("click")
    if click is not None and isinstance(error, (click.ClickException, click.exceptions.Exit, click.Abort)):
        if isinstance(error, click.ClickException):
            error.show()
        return code
    from . import logs

    log = logs.get()
    if isinstance(error, SecretrunError):
        problems = getattr(error, "problems", None)
        if (log_format or log.fmt) == "json":
            fields: dict = {"exit_code": code}
            if problems:
                fields["problems"] = [{"kind": p.kind.name.lower(), "message": p.message, "variable": p.variable,
                                       "provider": p.provider, "reference": p.reference, "location": p.location}
                                      for p in problems]
            log.log("error", getattr(error, "title", None) or str(error), **fields)
        else:
            sys.stderr.write(log.redact(f"secretrun: {error}") + "\n")
        return code
    # An unexpected failure: the type and where, never the message or locals
    # (an exception's message may quote data it was handling).
    import traceback

    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames)
    sys.stderr.write(f"secretrun: internal error: {type(error).__name__} at {where}\n"
                     "secretrun: please report this; no secret values are shown here\n")
    return code
