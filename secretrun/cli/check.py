"""``secretrun check``: every variable's status, never a value; ``--offline``
(no store) and ``--distinct-from`` (two profiles compared as digests)."""

from __future__ import annotations

import json
import os
from typing import List

import click

from ..app import Reported, open_session
from ..errors import Kind
from .group import _options, _shared, app

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
    from ..errors import ResolutionError
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
    names = list(session.manifest.env) + [n for n in session.manifest.extras if n not in session.manifest.env]
    imported = [n for n in result.managed if n not in names]
    from ..template import refs

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

    from ..distinct import Digests

    return Digests(secrets.token_bytes(32), profile, result.env, result.files, result.managed, result.sources)


def _distinct(opts, first, other: str) -> list:
    """Resolve profile ``other`` and compare it with ``first``'s digests."""
    from ..distinct import Digests, same_values

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
    from ..errors import ProblemReport
    from ..lint import lint, lint_all
    from ..providers.options import OFFLINE_LIMITS

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
    from .. import logs
    from ..perms import readable_by_others

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
        from ..errors import ManifestError
        from ..runas import resolve

        try:
            resolve(session.settings.user, session.manifest.path)
        except ManifestError as exc:
            warnings += [p.message for p in exc.problems]
    for name, source, reader in session.passed_on():
        how = "" if name == source else f" as {name}"
        warnings.append(f"{source} was read by secretrun to log in to a store ({reader}), and the manifest "
                        f"passes it on to the command{how}")
    return warnings
