"""The click application: ``run``, ``check``, ``env``, ``init``.

No business logic lives here: commands build ``app.Options`` and call the
library. Errors are turned into exit codes in one place, ``app.report``.
``secretrun [OPTIONS] -- COMMAND`` is routed to ``run``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

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


_STATUS = {Kind.MISSING: "missing", Kind.INVALID: "invalid", Kind.UNAVAILABLE: "unavailable",
           Kind.DENIED: "denied", Kind.MANIFEST: "error"}


@app.command()
@_shared
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--offline", is_flag=True,
              help="Validate the manifest, references and provider options without any store.")
@click.option("--all-profiles", is_flag=True, help="With --offline: the base manifest and every profile.")
@click.option("--distinct-from", "distinct_from", metavar="PROFILE",
              help="Fail for every variable whose value is the same in PROFILE.")
def check(manifest, profile, extra_env, log_level, log_format, fmt, offline, all_profiles, distinct_from) -> None:
    """Resolve every reference and show each variable's status; never values.

    Exits 0 when everything resolves, else with the code of the problems."""
    from .errors import ResolutionError
    opts = _options(manifest, profile, extra_env, log_level, log_format)
    if all_profiles and not offline:
        raise click.UsageError("--all-profiles goes with --offline")
    if offline:
        if distinct_from:
            raise click.UsageError("--distinct-from compares values, so it cannot be --offline")
        code = _check_offline(opts, fmt, all_profiles)
        if code:
            raise Reported(code)   # its report is printed already
        return
    session = open_session(opts, deliver_files=False)
    try:
        result, problems = session.inspect()
        digests = None
        if distinct_from:
            digests = _digests(session, result, profile)
    finally:
        session.close()
    if distinct_from:
        problems = problems + _distinct(opts, digests, distinct_from)
    by_var: dict = {}
    for p in problems:
        by_var.setdefault(p.variable, p)
    failed_providers = {name: p for name, p in session.provider_problems.items()}
    warned = {w.variable: w for w in result.warnings}
    rows = []
    names = list(session.manifest.env) + [n for n in session.extras if n not in session.manifest.env]
    imported = [n for n in result.managed if n not in names]
    from .template import refs

    for name in names + imported:
        var = session.manifest.env.get(name)
        found = refs(var.template) if var is not None else []
        problem = by_var.get(name) or next((failed_providers[r.provider] for r in found
                                            if r.provider in failed_providers), None)
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
        elif name in warned:
            status, reference, provider = "missing (warn)", warned[name].reference or "", warned[name].provider or ""
        else:
            status, reference, provider = "unset (optional)", "", ""
        if var is not None and not reference:
            reference = ", ".join(r.text for r in found) if found else "literal"
            provider = found[0].provider if found else ""
        rows.append({"variable": name, "provider": provider, "reference": reference, "status": status,
                     "version": result.versions.get(name), "file": bool(var and var.file)})
    others = [p for p in problems if p.variable not in {r["variable"] for r in rows}]
    warnings = _check_warnings(session, skip_said=fmt == "table")
    # Second line of defence: everything check prints passes the redactor (a
    # provider option rendered from a secret may be a path, a URL...).
    redact = session.log.redact
    if fmt == "json":
        doc = {"ok": not problems, "variables": rows, "warnings": warnings,
               "problems": [_problem_json(p) for p in problems]}
        click.echo(json.dumps(redact.fields(doc), indent=2))
    else:
        headers = ("VARIABLE", "PROVIDER", "REFERENCE", "STATUS", "VERSION")
        table = [headers] + [tuple(redact(str(cell)) for cell in (r["variable"], r["provider"], r["reference"],
                                                                  r["status"], r["version"] or ""))
                             for r in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
        for row in table:
            click.echo("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        for p in others:
            click.echo(redact(f"problem: {p}"), err=True)
        for text in warnings:
            click.echo(redact(f"warning: {text}"), err=True)
    if problems:
        error = ResolutionError(problems)
        raise error if fmt == "table" else Reported(error.code)


def _problem_json(p) -> dict:
    return {"kind": p.kind.name.lower(), "message": p.message, "variable": p.variable, "provider": p.provider,
            "reference": p.reference}


def _digests(session, result, profile):
    """The first profile's values as keyed digests (``secretrun.distinct``)."""
    import secrets

    from .distinct import Digests

    return Digests(secrets.token_bytes(32), profile, result.env, result.files, result.managed, result.sources)


def _distinct(opts, first, other: str) -> list:
    """Resolve profile ``other`` and compare it with ``first``'s digests."""
    from .distinct import Digests, same_values

    session = open_session(opts._replace(profile=other), deliver_files=False)
    try:
        result, problems = session.inspect()
        second = Digests(first.key, other, result.env, result.files, result.managed, result.sources)
    finally:
        session.close()
    # The other profile's own problems, said as such.
    own = [p._replace(message=f"in profile '{other}': {p.message}") for p in problems]
    return own + same_values(first, second)


def _check_offline(opts, fmt: str, all_profiles: bool) -> int:
    """``check --offline``: no store, no secret; problems of every profile at once."""
    from .errors import ProblemReport
    from .lint import lint, lint_all
    from .providers.options import OFFLINE_LIMITS

    results = lint_all(opts.manifest, opts.extra_env) if all_profiles else [
        lint(opts.manifest, opts.profile, opts.extra_env)]
    problems = [p for r in results for p in r.problems]
    not_checked = list(OFFLINE_LIMITS) + [n for r in results for n in r.not_checked]
    if fmt == "json":
        click.echo(json.dumps({"ok": not problems, "offline": True, "profiles": [
            {"profile": r.profile, "ok": not r.problems, "variables": r.variables, "providers": r.providers,
             "problems": [_problem_json(p) for p in r.problems]} for r in results],
            "not_checked": not_checked}, indent=2))
    else:
        for r in results:
            label = f"profile {r.profile}" if r.profile else "base manifest"
            if r.problems:
                click.echo(f"{label}: {len(r.problems)} problem(s)")
                for p in r.problems:
                    click.echo(f"  {p}")
            else:
                click.echo(f"{label}: ok ({r.variables} variables, {r.providers} providers)")
        click.echo("not checked offline: " + "; ".join(not_checked), err=True)
    return ProblemReport(problems).code if problems else 0


def _check_warnings(session, skip_said: bool = False) -> List[str]:
    """What ``check`` reports besides resolution: files others can read, and
    login credentials the manifest passes on to the command."""
    from . import logs
    from .perms import readable_by_others

    warnings = []
    paths = [("manifest", session.manifest.path)]
    paths += [(f"dotenv file of provider '{p.name}'", p.path)
              for p in session.providers.values() if p.type_name == "dotenv"]
    if session.settings.fallback:
        paths.append(("fallback file", os.path.join(session.manifest.base_dir, session.settings.fallback)))
    # On a terminal, not again what the run itself warned about; JSON lists all.
    said = set(logs.get().warned) if skip_said else set()
    for what, path in paths:
        try:
            exposed = readable_by_others(os.stat(path))
        except OSError:
            continue
        if exposed and os.path.abspath(path) not in said:
            said.add(os.path.abspath(path))  # one file, once, whatever it is to the manifest
            warnings.append(f"{what} {path} {exposed}")
    if session.settings.user:
        from .errors import ManifestError
        from .runas import resolve

        try:
            resolve(session.settings.user, session.manifest.path)
        except ManifestError as exc:
            warnings += [p.message for p in exc.problems]
    for name, source, reader in session.passed_on():
        how = "" if name == source else f" as {name}"
        warnings.append(f"{source} was read by secretrun to log in to a store ({reader}), and the manifest "
                        f"passes it on to the command{how}")
    return warnings


def _quote_dotenv(value: str) -> str:
    """A dotenv value that python-dotenv reads back byte for byte.

    Single quotes: no escapes but ``\\\\`` and ``\\'`` (so a backslash is
    doubled only before a backslash, a quote or the closing quote), newlines
    as they are. Docker compose reads single quotes literally, so it gets
    the same bytes unless the value holds ``'`` or such a backslash. A CR
    needs double quotes and ``\\r``: both readers turn a raw CR into LF.
    ``${`` is expanded by python-dotenv whatever the quoting (``env`` warns).
    """
    if "\r" in value:
        escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r")
                   .replace("\n", "\\n"))
        return f'"{escaped}"'
    out = []
    for i, char in enumerate(value):
        nxt = value[i + 1] if i + 1 < len(value) else "'"
        if char == "'" or (char == "\\" and nxt in "\\'"):
            out.append("\\")
        out.append(char)
    return "'" + "".join(out) + "'"


def _terminal_safe(text: str) -> str:
    """Control characters (an escape sequence can rewrite the screen, a CR
    hide what came before) made visible, for a terminal only."""
    return "".join(ch if ch == "\n" or (ch.isprintable() and ch != "\x7f") else
                   ("\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch)) for ch in text)


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
    lines: List[str] = []
    if fmt == "json":
        lines.append(json.dumps(values, indent=2))     # ASCII: control characters are escaped
    else:
        for name, value in values.items():
            if fmt == "shell":
                lines.append(f"export {name}={shlex.quote(value)}")   # sh, dash, bash: byte for byte
            else:
                if "${" in value:
                    click.echo(f"secretrun: warning: {name}'s value contains '${{': python-dotenv expands it "
                               "whatever the quoting (read with interpolate=False); docker compose does not",
                               err=True)
                lines.append(f"{name}={_quote_dotenv(value)}")
        for name in rendered.files:
            lines.append(f"# {name} is delivered as a file (file = true)")
    text = "\n".join(lines) + "\n"
    if reveal and sys.stdout.isatty() and _terminal_safe(text) != text:
        click.echo("secretrun: warning: control characters are shown escaped on a terminal; redirect the "
                   "output to a file for the exact values", err=True)
        text = _terminal_safe(text)
    # Not click.echo: it strips ANSI sequences when stdout is not a terminal,
    # which would change the values.
    sys.stdout.write(text)
    sys.stdout.flush()


def _provider_block(type_name: str) -> Tuple[str, str, str]:
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


def _scaffold(manifest: str, names: List[str], provider: str, dotenv_path: Optional[str]):
    """The starter manifest's text, and the data it must load back as.

    Every name and path that comes from outside (a directory name, a .env
    path, variable names) is written by a TOML writer (``tomli_w``), never
    pasted between quotes; the text is then parsed back and compared, so a
    hostile name cannot add a key or a variable."""
    import tomli_w

    from .manifest import is_env_name

    def line(key: str, value) -> str:
        return tomli_w.dumps({key: value}).strip()

    block, pname, pattern = _provider_block(provider)
    app_name = os.path.basename(os.path.abspath(os.path.dirname(manifest) or ".")) or "app"
    rel = os.path.relpath(dotenv_path, os.path.dirname(os.path.abspath(manifest))) if dotenv_path else ".env"
    block = block.replace('path = "{dotenv}"', line("path", rel))
    lines = ["# secretrun manifest: variable names mapped to secret references.",
             "# Reference: ${PROVIDER:PATH?version=V#FIELD}. Docs: README.md, 'secretrun --help'.",
             "version = 1", "", "[settings]", "# watch = false", "# strict = false"]
    if dotenv_path and provider != "dotenv":
        lines.append(f"# {line('fallback', rel)}   # laptop: unresolved variables come from this file")
    lines += ["", block.rstrip(), "", "[env]"]
    env = {}
    for name in names or ["DATABASE_URL"]:
        if not is_env_name(name):
            continue
        ref = pattern.format(name=name, app=app_name, slug=name.lower().replace("_", "-"), lower=name.lower())
        env[name] = f"${{{pname}:{ref}}}"
        lines.append(line(name, env[name]))
    if not names:
        lines.append('# LOG_LEVEL = "info"                        # a literal')
        lines.append('# API_KEY = { value = "${vault:secret/app#api_key}", min_length = 32 }')
    if dotenv_path and provider != "dotenv":
        lines += ["", "[profiles.development]", "settings." + line("fallback", rel)]
    text = "\n".join(lines) + "\n"
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    loaded = tomllib.loads(text)
    if loaded.get("env") != env or set(loaded) - {"version", "settings", "providers", "env", "profiles"} \
            or list(loaded.get("providers", {})) != [pname]:
        raise click.ClickException("the starter manifest did not read back as written; not saved")
    return text


@app.command()
@click.option("-m", "--manifest", metavar="PATH", envvar="SECRETRUN_MANIFEST", default="secretrun.toml",
              type=click.Path(dir_okay=False),
              show_default=True, help="Where to write the manifest.")
@click.option("--from-dotenv", "dotenv_path", metavar="PATH", type=click.Path(dir_okay=False),
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
    text = _scaffold(manifest, names, provider, dotenv_path)
    from .safefile import write_file

    # 0600, as check wants a manifest (it may come to hold literals).
    write_file(manifest, text.encode("utf-8"), 0o600)
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
@click.option("--from-dotenv", "dotenv_path", metavar="PATH", type=click.Path(dir_okay=False),
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


@app.command()
@click.option("-m", "--manifest", metavar="PATH", envvar="SECRETRUN_MANIFEST", type=click.Path(),
              help="Manifest file [default: ./secretrun.toml]; - reads it from standard input.")
@click.option("-p", "--profile", metavar="NAME", envvar="SECRETRUN_PROFILE",
              help="Profile to apply over the base manifest.")
def example(manifest, profile) -> None:
    """Print a .env.example for the manifest: names and descriptions, never values.

    Nothing is resolved and no store is contacted: secretrun example > .env.example"""
    from .dotenv_example import render
    from .manifest import load

    loaded, _ = load(manifest, profile)
    click.echo(render(loaded), nl=False)


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
