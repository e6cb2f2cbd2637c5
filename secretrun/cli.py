"""The click application: ``run``, ``check``, ``env``, ``init``.

No business logic lives here: commands build ``app.Options`` and call the
library. Errors are turned into exit codes in one place, ``app.report``.
``secretrun [OPTIONS] -- COMMAND`` is routed to ``run``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

import click

from . import __version__
from .app import LOG_FORMATS, LOG_LEVELS, Options, Reported, open_session, report, split_assignment
from .app import run as run_options
from .errors import Kind, UsageError

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
                  "--all-older-than"}


def _shared(func):
    """The options every command takes (SPEC §2), with their environment variables."""
    decorators = [
        click.option("-m", "--manifest", metavar="PATH", envvar="SECRETRUN_MANIFEST",
                     help="Manifest file [default: ./secretrun.toml]."),
        click.option("-p", "--profile", metavar="NAME", envvar="SECRETRUN_PROFILE",
                     help="Profile to apply over the base manifest."),
        click.option("-e", "extra_env", metavar="NAME=VALUE", multiple=True,
                     help="Extra variable; the value is a template, like a manifest value."),
        click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                     envvar="SECRETRUN_LOG_LEVEL", help="secretrun's own diagnostics [default: warning]."),
        click.option("--log-format", type=click.Choice(LOG_FORMATS, case_sensitive=False),
                     envvar="SECRETRUN_LOG_FORMAT", help="Diagnostics as text or JSON lines, on stderr."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _options(manifest, profile, extra_env, log_level, log_format, watch=None, argv=()) -> Options:
    try:
        pairs = tuple(split_assignment(e) for e in extra_env)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    return Options(manifest, profile, watch, pairs, (log_level or "").lower() or None,
                   (log_format or "").lower() or None, tuple(argv))


class SecretrunGroup(click.Group):
    """Routes ``secretrun [OPTIONS] -- CMD`` to ``run``, and lets shared
    options stand before the command name (``secretrun -m x check``)."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        if args and not any(a in ("--help", "-h", "--version") for a in args[:1]):
            head = args[:args.index("--")] if "--" in args else args
            i = 0
            found = None
            while i < len(head):
                token = head[i]
                if token in self.commands:
                    found = i
                    break
                i += 2 if token in _VALUE_OPTIONS else 1
            if found is None:
                args = ["run", *args]
            elif found > 0:
                args = [args[found], *args[:found], *args[found + 1:]]
        return super().parse_args(ctx, args)


@click.group(cls=SecretrunGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="secretrun")
def app() -> None:
    """Run a command with secrets from your stores in its environment.

    A TOML manifest (secretrun.toml) maps variable names to references such
    as ${vault:secret/app/db#url}; secretrun resolves them all, then replaces
    itself with the command (or, with --watch, supervises it).
    """


@app.command(context_settings={"allow_interspersed_args": False},
             epilog=EPILOG)
@_shared
@click.option("--watch/--no-watch", default=None, help="Supervise and react to rotation [default: settings.watch].")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(manifest, profile, extra_env, log_level, log_format, watch, command) -> None:
    """Resolve the manifest and run COMMAND with it: secretrun run -- COMMAND [ARG...]"""
    _exit(run_options(_options(manifest, profile, extra_env, log_level, log_format, watch, command)))


_STATUS = {Kind.MISSING: "missing", Kind.INVALID: "invalid", Kind.UNAVAILABLE: "unavailable",
           Kind.DENIED: "denied", Kind.MANIFEST: "error"}


@app.command()
@_shared
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def check(manifest, profile, extra_env, log_level, log_format, fmt) -> None:
    """Resolve every reference and show each variable's status; never values.

    Exits 0 when everything resolves, else with the code of the problems."""
    from .errors import ResolutionError
    opts = _options(manifest, profile, extra_env, log_level, log_format)
    session = open_session(opts, deliver_files=False)
    try:
        result, problems = session.inspect()
    finally:
        session.close()
    by_var: dict = {}
    for p in problems:
        by_var.setdefault(p.variable, p)
    rows = []
    names = list(session.manifest.env) + [n for n in session.extras if n not in session.manifest.env]
    imported = [n for n in result.managed if n not in names]
    for name in names + imported:
        var = session.manifest.env.get(name)
        problem = by_var.get(name)
        source = result.sources.get(name, "")
        if problem is not None:
            status, reference, provider = _STATUS[problem.kind], problem.reference or "", problem.provider or ""
        elif name in result.sources or name in result.files:
            status = "ok"
            if source == "default":
                status = "default"
            elif source.startswith("fallback "):
                status = "fallback"
            reference = source if source.startswith("${") else ""
            provider = reference[2:].split(":", 1)[0] if reference else ""
        else:
            status, reference, provider = "unset (optional)", "", ""
        if var is not None and not reference:
            from .template import refs

            found = refs(var.template)
            reference = ", ".join(r.text for r in found) if found else "literal"
            provider = found[0].provider if found else ""
        rows.append({"variable": name, "provider": provider, "reference": reference, "status": status,
                     "version": result.versions.get(name), "file": bool(var and var.file)})
    others = [p for p in problems if p.variable not in {r["variable"] for r in rows}]
    warnings = _check_warnings(session)
    if fmt == "json":
        click.echo(json.dumps({"ok": not problems, "variables": rows, "warnings": warnings,
                               "problems": [{"kind": p.kind.name.lower(), "message": p.message,
                                             "variable": p.variable, "provider": p.provider,
                                             "reference": p.reference} for p in problems]}, indent=2))
    else:
        headers = ("VARIABLE", "PROVIDER", "REFERENCE", "STATUS", "VERSION")
        table = [headers] + [(r["variable"], r["provider"], r["reference"], r["status"], r["version"] or "")
                             for r in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
        for row in table:
            click.echo("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        for p in others:
            click.echo(f"problem: {p}", err=True)
        for text in warnings:
            click.echo(f"warning: {text}", err=True)
    if problems:
        error = ResolutionError(problems)
        raise error if fmt == "table" else Reported(error.code)


def _check_warnings(session) -> List[str]:
    """What ``check`` reports besides resolution: files others can read, and
    login credentials the manifest passes on to the command."""
    from .perms import readable_by_others

    warnings = []
    paths = [("manifest", session.manifest.path)]
    paths += [(f"dotenv file of provider '{p.name}'", p.path)
              for p in session.providers.values() if p.type_name == "dotenv"]
    if session.settings.fallback:
        paths.append(("fallback file", os.path.join(session.manifest.base_dir, session.settings.fallback)))
    for what, path in paths:
        try:
            exposed = readable_by_others(os.stat(path))
        except OSError:
            continue
        if exposed:
            warnings.append(f"{what} {path} {exposed}")
    explicit = set(session.manifest.env) | set(session.extras)
    for name in session.consumed_env():
        if name in explicit:
            warnings.append(f"{name} was read by secretrun to log in to a store, and the manifest passes it "
                            "on to the command")
    return warnings


def _quote_dotenv(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@app.command()
@_shared
@click.option("--format", "fmt", type=click.Choice(["dotenv", "json", "shell"]), default="dotenv",
              show_default=True)
@click.option("--reveal", is_flag=True, help="Print the values themselves (they are masked otherwise).")
def env(manifest, profile, extra_env, log_level, log_format, fmt, reveal) -> None:
    """Print the variables the manifest sets (values masked unless --reveal).

    Inherited variables are not printed; file = true variables are listed by
    name only."""
    import shlex

    from .logs import MASK

    opts = _options(manifest, profile, extra_env, log_level, log_format)
    session = open_session(opts, deliver_files=False)
    try:
        rendered = session.resolve()
    finally:
        session.close()
    values = {}
    for name in rendered.managed:
        if name in rendered.files:
            continue
        values[name] = rendered.env[name] if reveal else MASK
    if fmt == "json":
        click.echo(json.dumps(values, indent=2))
    else:
        for name, value in values.items():
            if fmt == "shell":
                click.echo(f"export {name}={shlex.quote(value)}")
            else:
                click.echo(f"{name}={_quote_dotenv(value)}")
        for name in rendered.files:
            click.echo(f"# {name} is delivered as a file (file = true)")


def _scaffold(type_name: str) -> Tuple[str, str, str]:
    """The starter block for a provider type: its class's ``scaffold``,
    built-in or plugin, or a generic block when it has none or when its
    library is not installed yet (init must work before the extras are)."""
    from .errors import ProviderConfigError
    from .providers import known_types, load

    try:
        scaffold = load(type_name).scaffold
    except ProviderConfigError as exc:
        if type_name not in known_types(include_plugins=True):
            raise click.BadParameter(str(exc), param_hint="--provider") from None
        scaffold = None
    if scaffold:
        return scaffold
    name = type_name.split("-")[0]
    return f'[providers.{name}]\ntype = "{type_name}"\n', name, "{lower}"


@app.command()
@click.option("-m", "--manifest", metavar="PATH", envvar="SECRETRUN_MANIFEST", default="secretrun.toml",
              show_default=True, help="Where to write the manifest.")
@click.option("--from-dotenv", "dotenv_path", metavar="PATH",
              help="Take variable names (never values) from this .env file.")
@click.option("--provider", metavar="TYPE", default=None,
              help="Provider type the references point at: vault, aws-secretsmanager, aws-ssm, "
                   "gcp-secretmanager, azure-keyvault, dotenv, file or a plugin's "
                   "[default: dotenv with --from-dotenv, else vault].")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest.")
def init(manifest, dotenv_path, provider, force) -> None:
    """Write a starter manifest. Values are never copied into it."""
    from .errors import ProviderError
    from .providers.dotenv import read_dotenv

    if os.path.exists(manifest) and not force:
        raise click.ClickException(f"{manifest} already exists (use --force to overwrite)")
    names: List[str] = []
    if dotenv_path:
        try:
            names = list(read_dotenv(dotenv_path, "dotenv file"))
        except ProviderError as exc:
            raise click.ClickException(str(exc)) from None
    provider = provider or ("dotenv" if dotenv_path else "vault")
    block, pname, pattern = _scaffold(provider)
    app_name = os.path.basename(os.path.abspath(os.path.dirname(manifest) or ".")) or "app"
    rel = os.path.relpath(dotenv_path, os.path.dirname(os.path.abspath(manifest))) if dotenv_path else ".env"
    lines = ["# secretrun manifest: variable names mapped to secret references.",
             "# Reference: ${PROVIDER:PATH?version=V#FIELD}. Docs: README.md, 'secretrun --help'.",
             "version = 1", "", "[settings]", "# watch = false", "# strict = false"]
    if dotenv_path and provider != "dotenv":
        lines.append(f'# fallback = "{rel}"   # laptop: unresolved variables come from this file')
    lines += ["", block.format(dotenv=rel).rstrip(), "", "[env]"]
    from .manifest import is_env_name

    for name in names or ["DATABASE_URL"]:
        if not is_env_name(name):
            continue
        ref = pattern.format(name=name, app=app_name, slug=name.lower().replace("_", "-"), lower=name.lower())
        lines.append(f'{name} = "${{{pname}:{ref}}}"')
    if not names:
        lines.append('# LOG_LEVEL = "info"                        # a literal')
        lines.append('# API_KEY = { value = "${vault:secret/app#api_key}", min_length = 32 }')
    if dotenv_path and provider != "dotenv":
        lines += ["", "[profiles.development]", f'settings.fallback = "{rel}"']
    with open(manifest, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    click.echo(f"wrote {manifest} ({len(names) or 1} variable{'s' if len(names) != 1 else ''}, "
               f"provider {provider}); check it with: secretrun check -m {manifest}")


def _adopt_session(manifest, profile, extra_env, log_level, log_format):
    opts = _options(manifest, profile, extra_env, log_level, log_format)
    return opts, open_session(opts, deliver_files=False)


def _print_rows(rows) -> None:
    table = [("VARIABLE", "REFERENCE", "ACTION", "VERSION")] + [
        (r.variable, r.reference, r.action, r.version or "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def _verify(opts) -> None:
    """The same resolution as ``check``, on a fresh session, to prove the
    manifest resolves after writing."""
    from .errors import ResolutionError

    session = open_session(opts, deliver_files=False)
    try:
        result, problems = session.inspect()
    finally:
        session.close()
    if problems:
        raise ResolutionError(problems)
    click.echo(f"check: all {len(result.managed)} variables resolve", err=True)


@app.command()
@_shared
@click.option("--from-dotenv", "dotenv_path", metavar="PATH",
              help="Take the values from this .env file [default: .env].")
@click.option("--from-env", is_flag=True, help="Take the values from secretrun's own environment.")
@click.option("--dry-run", is_flag=True, help="List what would be written; write nothing.")
@click.option("--overwrite", is_flag=True, help="Replace values that differ from what a store holds.")
@click.option("--rollback", is_flag=True, help="Restore the versions the latest push (or rotate) replaced.")
def push(manifest, profile, extra_env, log_level, log_format, dotenv_path, from_env, dry_run, overwrite,
         rollback) -> None:
    """Write values from a .env file into the stores the manifest points at.

    Every variable that is one reference to a store that can be written
    (vault, aws-secretsmanager, aws-ssm, gcp-secretmanager, azure-keyvault,
    a plugin with write()) gets its value written as a new version; then the manifest is resolved as by check. Values are never
    printed."""
    from . import adopt

    if from_env and dotenv_path:
        raise click.UsageError("--from-dotenv and --from-env exclude each other")
    opts, session = _adopt_session(manifest, profile, extra_env, log_level, log_format)
    try:
        if rollback:
            _print_rows(adopt.rollback(session))
        else:
            values = adopt.source_values(None if from_env else (dotenv_path or ".env"), os.environ,
                                         list(session.manifest.env))
            rows = adopt.push(session, values, dry_run=dry_run, overwrite=overwrite)
            _print_rows(rows)
            if dry_run:
                return
    finally:
        session.close()
    _verify(opts)


@app.command()
@_shared
@click.option("--length", type=click.IntRange(1, 4096), default=None,
              help="Length of the new values [default: min_length or pattern, at least 32].")
@click.option("--alphabet", type=click.Choice(["alnum", "hex", "base64url", "ascii-printable"]), default=None,
              help="Characters of the new values [default: the pattern's class, else alnum].")
@click.option("--all-older-than", "older_than", metavar="AGE",
              help="Rotate every writable variable whose current version is older (90d, 12h).")
@click.argument("variables", nargs=-1)
def rotate(manifest, profile, extra_env, log_level, log_format, length, alphabet, older_than, variables) -> None:
    """Write a new random value for each VARIABLE as a new version.

    Prints only the new version id (NAME VERSION lines for several). The
    previous version stays in the store, so a grace period is possible."""
    from . import adopt

    if not variables and not older_than:
        raise click.UsageError("name the variables to rotate, or give --all-older-than AGE")
    age = None
    if older_than:
        try:
            age = adopt.parse_age(older_than)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--all-older-than") from None
    _, session = _adopt_session(manifest, profile, extra_env, log_level, log_format)
    try:
        rows, warnings = adopt.rotate(session, list(variables), length,
                                      adopt.ALPHABETS[alphabet] if alphabet else None, age)
    finally:
        session.close()
    for warning in warnings:
        click.echo(f"secretrun: {warning}", err=True)
    if len(variables) == 1 and len(rows) == 1:
        click.echo(rows[0].version or "")
    else:
        for row in rows:
            click.echo(f"{row.variable} {row.version or ''}".rstrip())


@app.command()
@click.option("--length", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option("--alphabet", type=click.Choice(["alnum", "hex", "base64url", "ascii-printable"]), default="alnum",
              show_default=True)
def generate(length, alphabet) -> None:
    """Print a strong random value (the one command whose job is to print a secret)."""
    from . import adopt

    click.echo(adopt.generate(length, adopt.ALPHABETS[alphabet]))


def _exit(code: int) -> None:
    sys.exit(code)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the click application; every error goes through ``app.report``."""
    try:
        app.main(args=list(sys.argv[1:] if args is None else args), prog_name="secretrun",
                 standalone_mode=False)
        return 0
    except BaseException as exc:  # noqa: BLE001 - app.report is where errors become exit codes
        return report(exc)
