"""``secretrun init``: a starter manifest, written through a TOML writer
(``tomli_w``) and read back before it is saved; never a value."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

import click

from .group import app


def _provider_block(type_name: str) -> Tuple[str, str, str]:
    """The starter block for a provider type: its class's ``scaffold``,
    built-in or plugin, or a generic block when it has none or when its
    library is not installed yet (init must work before the extras are)."""
    from ..errors import ProviderConfigError
    from ..providers import known_types, load

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

    from ..manifest import is_env_name

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
    from ..manifest import parse_toml

    loaded = parse_toml(text.encode("utf-8"), manifest)
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
    from ..errors import ProviderError
    from ..providers.dotenv import read_dotenv

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
    from ..safefile import write_file

    # 0600, as check wants a manifest (it may come to hold literals).
    write_file(manifest, text.encode("utf-8"), 0o600)
    click.echo(f"wrote {manifest} ({len(names) or 1} variable{'s' if len(names) != 1 else ''}, "
               f"provider {provider}); check it with: secretrun check -m {manifest}")
