"""``secretrun env`` (the variables as dotenv, JSON or shell, masked unless
``--reveal``) and ``secretrun example`` (a ``.env.example``, nothing resolved)."""

from __future__ import annotations

import json
import sys
from typing import List

import click

from ..app import open_session
from .group import _options, _shared, app


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

    from ..redact import MASK

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



@app.command()
@click.option("-m", "--manifest", metavar="PATH", envvar="SECRETRUN_MANIFEST", type=click.Path(),
              help="Manifest file [default: ./secretrun.toml]; - reads it from standard input.")
@click.option("-p", "--profile", metavar="NAME", envvar="SECRETRUN_PROFILE",
              help="Profile to apply over the base manifest.")
def example(manifest, profile) -> None:
    """Print a .env.example for the manifest: names and descriptions, never values.

    Nothing is resolved and no store is contacted: secretrun example > .env.example"""
    from ..dotenv_example import render
    from ..manifest import load

    loaded = load(manifest, profile)
    click.echo(render(loaded), nl=False)
