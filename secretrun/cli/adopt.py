"""``secretrun push``, ``rotate`` and ``generate``: the commands over
``secretrun.adopt``; what they print is names, references, actions and
version ids (``generate`` alone prints a value: that is its job)."""

from __future__ import annotations

import os

import click

from ..app import open_session
from .group import _options, _shared, app


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
    from ..errors import ResolutionError

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
    from .. import adopt

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
    from .. import adopt

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
    from .. import adopt

    click.echo(adopt.generate(length, adopt.ALPHABETS[alphabet]))
