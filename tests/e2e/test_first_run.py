"""The first hour, as a new user walks it: the README's set-up commands pasted
in order into one shell, in a fresh clone, then the quick start's Vault step
against a real OpenBao, with and without a Vault to answer.

The clone is the checkout's tracked files laid out as ``git clone`` lays
them out: git records no mode but the executable bit, so each file is 0644
or 0755 under umask 022. Installing is the one step stood in for (no
network in tests): ``python3 -m venv .venv`` makes a ``.venv/bin`` whose
``pip`` records its arguments, whose ``secretrun`` is this checkout's, and
whose ``pytest`` runs one quick test file from wherever it is started.
CI installs for real: ``.ci/run`` runs the same commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.conftest import ROOT

_SKIP_DIRS = {".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", "build", "dist"}


def readme_commands(section: str = "## Set up") -> List[str]:
    """The indented command lines of one README section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(section + "\n")
    end = text.index("\n## ", start + len(section))
    return [line[4:] for line in text[start:end].splitlines() if line.startswith("    ") and line.strip()]


def tracked_files() -> List[str]:
    if (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode()
        return [p for p in out.split("\0") if p and (ROOT / p).is_file()]
    # An unpacked sdist: everything but what a run leaves behind.
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        files += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames if not f.endswith(".pyc")]
    return [f for f in files if f != os.path.join("examples", "quickstart", ".env")]


def fresh_clone(dest: Path) -> Path:
    """The files as ``git clone`` would write them under umask 022."""
    for rel in tracked_files():
        src, dst = ROOT / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755 if os.stat(src).st_mode & 0o100 else 0o644)
    return dest


def shims(bin_dir: Path, clone: Path, log: Path, bao: Optional[str] = None) -> None:
    """``python3`` that makes the stand-in venv for ``-m venv .venv`` and is
    the real interpreter otherwise; ``vault`` as OpenBao's CLI."""
    bin_dir.mkdir()
    venv_bin = f'''mkdir -p .venv/bin
cat > .venv/bin/pip <<'EOF'
#!/bin/sh
echo "pip $* (in $PWD)" >> {log}
EOF
cat > .venv/bin/secretrun <<'EOF'
#!/bin/sh
PYTHONPATH={clone} exec {sys.executable} -m secretrun "$@"
EOF
cat > .venv/bin/pytest <<'EOF'
#!/bin/sh
echo "pytest $* (in $PWD)" >> {log}
exec {sys.executable} -m pytest -q -p no:cacheprovider tests/unit/test_template.py
EOF
chmod +x .venv/bin/*'''
    (bin_dir / "python3").write_text(f'''#!/bin/sh
if [ "$1 $2 $3" = "-m venv .venv" ]; then
{venv_bin}
  exit 0
fi
exec {sys.executable} "$@"
''')
    if bao:
        os.symlink(bao, bin_dir / "vault")
    for entry in bin_dir.iterdir():
        entry.chmod(0o755)


def paste(lines: List[str], clone: Path, bin_dir: Path, env: Optional[Dict[str, str]] = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    """The lines as typed into one interactive-like shell: each runs where the
    previous one left the shell; the first failure stops the script."""
    script = "set -e\numask 022\n" + "\n".join(lines) + "\n"
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(clone.parent), "LANG": "C.UTF-8",
                **(env or {})}
    return subprocess.run(["bash", "-c", script], cwd=clone, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def clone(tmp_path):
    return fresh_clone(tmp_path / "secretrun")


def app_lines(stdout: str) -> List[str]:
    return [line for line in stdout.splitlines() if re.match(r"(DATABASE_URL|API_KEY|LOG_LEVEL): ", line)]


def test_readme_set_up_works_pasted_in_order_from_a_fresh_clone(clone, tmp_path):
    """Quick start, then the test command, as written: no `cd` leaks from one
    to the next, no warning the tool itself caused."""
    commands = [c for c in readme_commands() if c not in vault_commands()]
    assert any("secretrun -- python3 app.py" in c for c in commands)
    assert commands[-1].endswith('.venv/bin/pytest -m "not slow"')
    log = tmp_path / "installs.log"
    shims(tmp_path / "bin", clone, log)
    out = paste(commands, clone, tmp_path / "bin", env={"VAULT_ADDR": "http://127.0.0.1:1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert app_lines(out.stdout) == ["DATABASE_URL: set, 52 characters", "API_KEY: set, 24 characters",
                                     "LOG_LEVEL: set, 4 characters"]
    assert "passed" in out.stdout
    # The installs and the tests ran at the clone's top, where setup.py's
    # pyproject.toml and tests/ are.
    assert all(line.endswith(f"(in {clone})") for line in log.read_text().splitlines()), log.read_text()
    assert "warning" not in out.stderr, out.stderr
    assert oct((clone / "examples" / "quickstart" / ".env").stat().st_mode & 0o777) == "0o600"


def vault_commands() -> List[str]:
    """The quick start's Vault step: from after the quick start's run to the
    run with ``-p vault``."""
    commands = readme_commands()
    start = next(i for i, c in enumerate(commands) if "secretrun -- python3 app.py" in c)
    end = next(i for i, c in enumerate(commands) if "secretrun -p vault -- python3 app.py" in c)
    return commands[start + 1:end + 1]


def vault_step(clone: Path, tmp_path: Path, env: Dict[str, str], bao_bin: Optional[str] = None,
               with_put: bool = True) -> subprocess.CompletedProcess:
    commands = readme_commands()
    start = next(i for i, c in enumerate(commands) if "secretrun -- python3 app.py" in c)
    vault = vault_commands()
    assert vault[0] == ".venv/bin/pip install -e '.[vault]'"   # the provider needs hvac
    assert vault[1].startswith("vault kv put secret/quickstart ")
    shims(tmp_path / "bin", clone, tmp_path / "installs.log", bao=bao_bin)
    lines = commands[:start + 1] + (vault if with_put else [c for c in vault if not c.startswith("vault ")])
    return paste(lines, clone, tmp_path / "bin", env=env)


def test_quick_start_vault_step_reads_what_the_readme_puts_in_vault(bao, clone, tmp_path):
    from tests.vault_server import bao_binary

    bao.server.client().secrets.kv.v2.delete_metadata_and_all_versions(path="quickstart", mount_point="secret")
    out = vault_step(clone, tmp_path, {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root}, bao_binary())
    assert out.returncode == 0, out.stdout + out.stderr
    put = re.search(r"database_url=(\S+) api_key=(\S+)", vault_commands()[1])
    # The second run of app.py is the Vault one: the lengths of what was put.
    assert app_lines(out.stdout)[3:] == [f"DATABASE_URL: set, {len(put.group(1))} characters",
                                         f"API_KEY: set, {len(put.group(2))} characters",
                                         "LOG_LEVEL: set, 4 characters"]
    assert "fallback" not in out.stderr and "warning" not in out.stderr, out.stderr


@pytest.mark.parametrize("store", ["no vault", "empty vault", "no token"])
def test_quick_start_vault_step_falls_back_to_env_as_documented(bao, clone, tmp_path, store):
    """No Vault at all, a Vault without the secret, no token: the app still
    gets every variable, from .env by name, and the warning says why."""
    env = {"no vault": {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"},
           "empty vault": {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root},
           "no token": {"VAULT_ADDR": bao.url}}[store]
    if store == "empty vault":
        bao.server.client().secrets.kv.v2.delete_metadata_and_all_versions(path="quickstart", mount_point="secret")
    out = vault_step(clone, tmp_path, env, with_put=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert app_lines(out.stdout)[3:] == app_lines(out.stdout)[:3] == [
        "DATABASE_URL: set, 52 characters", "API_KEY: set, 24 characters", "LOG_LEVEL: set, 4 characters"]
    reason = {"no vault": "store unreachable", "empty vault": "not found", "no token": "access denied"}[store]
    for name in ("DATABASE_URL", "API_KEY"):
        assert f"{name}: using the fallback file .env, because {reason}" in out.stderr, out.stderr
    assert "(Denied)" not in out.stderr and "(Unavailable)" not in out.stderr
