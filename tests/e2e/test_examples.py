"""Every example runs, or at least validates, here, so none can rot."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from secretrun.manifest import load
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"


def secretrun(*args, cwd, env=None):
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "secretrun", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)


def test_quick_start_runs_from_dotenv(tmp_path):
    quickstart = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", quickstart, ignore=shutil.ignore_patterns(".env"))
    (quickstart / ".env").write_text((quickstart / ".env.example").read_text())
    os.chmod(quickstart / ".env", 0o600)  # as the README's quick start makes it
    run = secretrun("--", sys.executable, "app.py", cwd=quickstart)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["DATABASE_URL: set, 52 characters", "API_KEY: set, 24 characters",
                                       "LOG_LEVEL: set, 4 characters"]
    assert run.stderr == ""
    assert secretrun("check", cwd=quickstart).returncode == 0


def test_quick_start_vault_profile_validates():
    manifest = load(str(EXAMPLES / "quickstart" / "secretrun.toml"), "vault")
    assert manifest.providers["store"].type == "vault" and manifest.settings.fallback == ".env"


def test_docker_example(tmp_path):
    compose = yaml.safe_load((EXAMPLES / "docker" / "compose.yaml").read_text())
    assert set(compose["services"]["web"]["secrets"]) == set(compose["secrets"])
    dockerfile = (EXAMPLES / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["secretrun", "--"]' in dockerfile
    # development: /run/secrets is absent here, so everything comes from the fallback
    run = secretrun("check", "-p", "development", "--format", "json", cwd=EXAMPLES / "docker")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {v["status"] for v in json.loads(run.stdout)["variables"]} <= {"fallback", "ok"}
    # production: the compose secrets files stand in for /run/secrets
    text = (EXAMPLES / "docker" / "secretrun.toml").read_text()
    (tmp_path / "secretrun.toml").write_text(text.replace("/run/secrets", str(EXAMPLES / "docker" / "secrets")))
    run = secretrun("--", sys.executable, "-c", "import os; print(os.environ['DATABASE_URL'])", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "postgres://web:compose-db-password@db:5432/web"


def test_kubernetes_example_manifest_is_valid(tmp_path):
    docs = list(yaml.safe_load_all((EXAMPLES / "kubernetes" / "deployment.yaml").read_text()))
    deployment, configmap = docs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["secretrun", "--watch"]
    path = tmp_path / "secretrun.toml"
    path.write_text(configmap["data"]["secretrun.toml"])
    manifest = load(str(path))
    assert manifest.providers["vault"].options["auth"]["method"] == "kubernetes"
    assert manifest.env["TLS_KEY"].file and manifest.env["TLS_KEY"].on_change == "signal"


def test_kubernetes_example_checks_against_openbao(bao, tmp_path):
    """The example's manifest, pointed at the test server: Kubernetes auth with
    a service-account token (the test server's TokenReview accepts it) and a
    secret volume laid out as the kubelet does (``..data`` links)."""
    from tests.vault_server import service_account_claims

    configmap = list(yaml.safe_load_all((EXAMPLES / "kubernetes" / "deployment.yaml").read_text()))[1]
    token = bao.signer.sign(service_account_claims())
    bao.review.accepted.add(token)
    (tmp_path / "sa-token").write_text(token)
    volume = tmp_path / "tls"
    (volume / "..2026_11_25").mkdir(parents=True)
    for name in ("tls.key", "tls.crt"):
        (volume / "..2026_11_25" / name).write_text(f"{name} content\n")
        os.symlink(f"..data/{name}", volume / name)
    os.symlink("..2026_11_25", volume / "..data")
    text = configmap["data"]["secretrun.toml"]
    text = text.replace('role = "web" }', f'role = "app", token_file = "{tmp_path / "sa-token"}" }}')
    text = text.replace("secret/web/db", "secret/app/db").replace('"/etc/tls"', f'"{volume}"')
    (tmp_path / "secretrun.toml").write_text(text)
    run = secretrun("check", "--format", "json", cwd=tmp_path, env={"VAULT_ADDR": bao.url})
    assert run.returncode == 0, run.stdout + run.stderr
    assert {v["variable"]: v["status"] for v in json.loads(run.stdout)["variables"]} == {
        "DATABASE_URL": "ok", "TLS_KEY": "ok", "TLS_CERT": "ok"}


def test_systemd_example_manifest_is_valid():
    manifest = load(str(ROOT / "systemd" / "example-app.toml"))
    assert manifest.providers["vault"].templates  # the secret id comes from the credentials directory


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["secretrun@.service", "example-app.service"])
def test_systemd_units_verify(unit, tmp_path):
    text = (ROOT / "systemd" / unit).read_text()
    # verify checks that ExecStart's binary exists; stand in for the installed paths
    text = text.replace("/usr/local/bin/secretrun", "/bin/true").replace("/usr/local/bin/%i", "/bin/true")
    text = text.replace("/usr/local/bin/example-app", "/bin/true")
    target = tmp_path / unit
    target.write_text(text)
    name = str(target).replace("@.service", "@demo.service")
    run = subprocess.run(["systemd-analyze", "verify", name], capture_output=True, text=True, timeout=60)
    problems = [line for line in run.stderr.splitlines() if str(tmp_path) in line or "Unknown" in line]
    assert run.returncode == 0 and not problems, run.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts(shell, tmp_path):
    env = {"_SECRETRUN_COMPLETE": f"{shell}_source"}
    run = secretrun(cwd=tmp_path, env=env)
    assert run.returncode == 0 and "_SECRETRUN_COMPLETE" in run.stdout


def test_completion_of_command_names(tmp_path):
    run = secretrun(cwd=tmp_path, env={"_SECRETRUN_COMPLETE": "bash_complete", "COMP_WORDS": "secretrun ch",
                                       "COMP_CWORD": "1"})
    assert "check" in run.stdout
