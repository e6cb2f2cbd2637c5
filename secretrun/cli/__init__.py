"""The click application: ``run``, ``check``, ``env``, ``init``, ``example``,
``push``, ``rotate``, ``generate``.

No business logic lives here: commands build ``app.Options`` and call the
library. Errors are turned into exit codes in one place, ``app.report``.
``secretrun [OPTIONS] -- COMMAND`` is routed to ``run``.

This package holds ``main`` and ``run``; the group, its routing and the
shared options are in ``group``, the other commands in ``check``, ``env``
(with ``example``), ``init`` and ``adopt`` (``push``, ``rotate``, ``generate``).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import click

from ..app import report
from ..app import run as run_options
from . import adopt, check, env, init  # noqa: F401 - importing them registers their commands on ``app``
from .group import COMMAND_HINT, EPILOG, _complete_command, _options, _shared, app


@app.command(context_settings={"allow_interspersed_args": False},
             epilog=EPILOG)
@_shared
@click.option("--watch/--no-watch", default=None, help="Supervise and react to rotation [default: settings.watch].")
@click.option("--user", metavar="NAME|UID:GID", default=None,
              help="Run the command as this user (secretrun resolves as itself) [default: settings.user].")
@click.option("--listen", "listen", metavar="ADDRESS", multiple=True,
              help="Bind ADDRESS (tcp://HOST:PORT, unix:/PATH) and hand it to the command as fd 3, 4, ... "
                   "(systemd socket activation) [default: settings.listen].")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, shell_complete=_complete_command)
def run(manifest, profile, extra_env, log_level, log_format, watch, user, listen, command) -> None:
    """Resolve the manifest and run COMMAND with it: secretrun run -- COMMAND [ARG...]"""
    opts = _options(manifest, profile, extra_env, log_level, log_format, watch, command)
    _exit(run_options(opts._replace(user=user or None, listen=tuple(listen))))


def _exit(code: int) -> None:
    sys.exit(code)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the click application; every error goes through ``app.report``."""
    try:
        app.main(args=list(sys.argv[1:] if args is None else args), prog_name="secretrun",
                 standalone_mode=False)
        return 0
    except BaseException as exc:  # noqa: BLE001 - app.report is where errors become exit codes
        if isinstance(exc, click.NoSuchOption) and exc.option_name == "--command":
            exc.message = COMMAND_HINT  # type: ignore[misc]
        return report(exc)
