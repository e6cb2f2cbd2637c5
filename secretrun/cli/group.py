"""The click group: the typo-safe routing of ``secretrun [OPTIONS] -- CMD``
to ``run``, the options every command shares, and shell completion.

Every command module decorates its commands onto ``app``; the package
(``secretrun.cli``) imports them all and holds ``main``.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import click

from .. import __version__
from ..app import LOG_FORMATS, LOG_LEVELS, Options, split_assignment
from ..errors import UsageError

EPILOG = """\b
Examples:
  secretrun -- gunicorn app:app                  # ./secretrun.toml, then exec
  secretrun -m /etc/app/secretrun.toml -p production -- ./server
  secretrun --watch -- ./server                  # supervise; restart on rotation
  secretrun check                                # resolve all, show status, no values
  secretrun env --format dotenv                  # the environment, values masked
  secretrun init --from-dotenv .env              # a manifest from a .env (names only)
  secretrun push --from-dotenv .env --dry-run    # what would be written to the stores
  secretrun rotate JWT_SECRET                    # a new random value, as a new version

Exit codes: the command's own (128+N if killed by signal N); 2 bad usage;
65 invalid value; 69 store unreachable; 77 access denied; 78 invalid
manifest; 1 missing secret or other failure; 126/127 command not
executable / not found.
"""

_VALUE_OPTIONS = {"-m", "--manifest", "-p", "--profile", "-e", "--log-level", "--log-format", "--format",
                  "--from-dotenv", "--provider", "-o", "--output", "--length", "--alphabet",
                  "--all-older-than", "--user", "--listen"}


def _shared(func):
    """The options every command takes (SPEC §2), with their environment variables."""
    decorators = [
        click.option("-m", "--manifest", metavar="PATH", envvar="SECRETRUN_MANIFEST", type=click.Path(),
                     help="Manifest file [default: ./secretrun.toml]."),
        click.option("-p", "--profile", metavar="NAME", envvar="SECRETRUN_PROFILE",
                     help="Profile to apply over the base manifest."),
        click.option("-e", "extra_env", metavar="NAME=VALUE", multiple=True,
                     help="Extra variable; the value is a template, like a manifest value."),
        click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                     envvar="SECRETRUN_LOG_LEVEL", help="secretrun's own diagnostics [default: warning]."),
        click.option("--log-format", type=click.Choice(LOG_FORMATS, case_sensitive=False),
                     envvar="SECRETRUN_LOG_FORMAT", help="Diagnostics as text or JSON lines, on stderr."),
        # Not a parameter of each command: kept in ctx.meta, read by _options.
        click.option("--env-file", metavar="PATH", multiple=True, type=click.Path(dir_okay=False),
                     expose_value=False, callback=_keep_env_files,
                     help="A dotenv file imported whole (repeatable); no manifest needed."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _complete_command(ctx: click.Context, param: click.Parameter, incomplete: str):
    """After ``--``: program names from PATH for the first word, files for
    the rest (as the shell would complete them without secretrun)."""
    from click.shell_completion import CompletionItem

    if ctx.params.get(param.name) or "/" in incomplete or incomplete.startswith(("~", ".")):
        return [CompletionItem(incomplete, type="file")]
    names = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        try:
            with os.scandir(directory or ".") as entries:
                for entry in entries:
                    if entry.name.startswith(incomplete) and entry.is_file() and os.access(entry.path, os.X_OK):
                        names.add(entry.name)
        except OSError:
            continue
    return [CompletionItem(name) for name in sorted(names)] or [CompletionItem(incomplete, type="file")]


def _keep_env_files(ctx: click.Context, param: click.Parameter, value: Tuple[str, ...]) -> None:
    ctx.meta["secretrun.env_files"] = tuple(value or ())


def _options(manifest, profile, extra_env, log_level, log_format, watch=None, argv=()) -> Options:
    try:
        pairs = tuple(split_assignment(e) for e in extra_env)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    ctx = click.get_current_context(silent=True)
    env_files = ctx.meta.get("secretrun.env_files", ()) if ctx is not None else ()
    return Options(manifest, profile, watch, pairs, (log_level or "").lower() or None,
                   (log_format or "").lower() or None, tuple(argv), env_files=tuple(env_files))


class SecretrunGroup(click.Group):
    """Routes ``secretrun [OPTIONS] -- CMD`` to ``run``, and lets shared
    options stand before the command name (``secretrun -m x check``)."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        if args and not any(a in ("--help", "-h", "--version") for a in args[:1]):
            head = args[:args.index("--")] if "--" in args else args
            i = 0
            found = None
            known = None
            while i < len(head):
                token = head[i]
                if token in self.commands:
                    found = i
                    break
                if token.split("=", 1)[0] == "--command":
                    raise click.UsageError(COMMAND_HINT)
                if not token.startswith("-"):
                    if ctx.resilient_parsing:  # completing: never an error
                        break
                    raise click.UsageError(unknown_command(token, list(self.commands), args[:i], args[i + 1:]))
                if known is None:
                    known = self._option_values()
                if token in known:
                    i += 1 + known[token]
                elif token.split("=", 1)[0] in known or token[:2] in known:
                    i += 1                      # --manifest=x, -mx
                else:
                    break  # an unknown option: click names it, with its own "did you mean"
            if found is None:
                args = ["run", *args]
            elif found > 0:
                args = [args[found], *args[:found], *args[found + 1:]]
        return super().parse_args(ctx, args)

    def _option_values(self) -> Dict[str, int]:
        """Every option of every command, with how many values it takes:
        what may stand before a command name."""
        values = {name: 1 for name in _VALUE_OPTIONS}
        for command in self.commands.values():
            for param in command.params:
                if isinstance(param, click.Option):
                    count = 0 if param.is_flag or param.count else max(param.nargs, 1)
                    values.update((name, count) for name in (*param.opts, *param.secondary_opts))
        return values

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] -- COMMAND [ARG]...")
        formatter.write_usage(ctx.command_path, f"[OPTIONS] {'|'.join(sorted(self.commands))} [ARGS]...",
                              prefix="   or: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's own options, then the shared ones (they are accepted
        before or after any command name, so they belong on this page), then
        the commands."""
        click.Command.format_options(self, ctx, formatter)
        run_command = self.commands["run"]
        rows = [record for param in run_command.get_params(ctx)
                if isinstance(param, click.Option) and param.name != "help"
                for record in [param.get_help_record(ctx)] if record]
        with formatter.section("Shared options (before or after the command name)"):
            formatter.write_dl(rows)
        self.format_commands(ctx, formatter)


# doppler's, infisical's and envconsul's spelling; secretrun's is sh -c (README, "Conventions").
COMMAND_HINT = "secretrun has no --command: to run a shell command line, secretrun [OPTIONS] -- sh -c 'COMMAND LINE'"


def unknown_command(word: str, commands: List[str], before: Sequence[str] = (), after: Sequence[str] = ()) -> str:
    """The grammar is ``secretrun [OPTIONS] -- COMMAND``: a bare word where a
    secretrun command would stand is refused before anything is resolved
    (``secretrun chekc`` must not fetch every secret, then exec ``chekc``)."""
    import difflib
    import shlex

    close = difflib.get_close_matches(word, commands, n=1, cutoff=0.6)
    run = shlex.join(["secretrun", *before, "--", word, *[a for a in after if a != "--"]])
    if close:
        return f"unknown command {word!r}: did you mean `secretrun {close[0]}`? (to run a program: {run})"
    return f"{word!r} is not a secretrun command; to run it, put -- before it: {run}"


@click.group(cls=SecretrunGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="secretrun")
def app() -> None:
    """Run a command with secrets from your stores in its environment.

    A TOML manifest (secretrun.toml) maps variable names to references such
    as ${vault:secret/app/db#url}; secretrun resolves them all, then replaces
    itself with the command (or, with --watch, supervises it).
    """
