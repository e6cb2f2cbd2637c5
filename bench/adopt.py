"""Push 20 variables (10 KV v2 secrets, two fields each) into a local
OpenBao dev server, and rotate 10 of them.

    python -m bench.adopt [--repeat 5]

Compared in the same run:

- ``hvac read+write``: the baseline, what a careful script does by hand: for
  each secret, read it (to compare) and write the new map, on one hvac client;
- ``secretrun push``: ``adopt.push`` on a fresh session (manifest loading, the
  vault provider's mount lookup, one read and one write per secret, the journal);
- ``secretrun rotate``: ``adopt.rotate`` of one field of each secret.

Figures are medians of ``--repeat`` runs, each with new values (so every
secret gets a new version) and a new client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from secretrun import adopt
from secretrun.manifest import load
from secretrun.resolver import Session
from tests.vault_server import BaoServer

SECRETS = 10


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.adopt")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, BaoServer(Path(tmp) / "bao") as server:
        env_lines = [f'U{i} = "${{vault:secret/bench/s{i}#user}}"\nP{i} = "${{vault:secret/bench/s{i}#password}}"'
                     for i in range(SECRETS)]
        path = Path(tmp) / "secretrun.toml"
        path.write_text(f'version = 1\n[providers.vault]\ntype = "vault"\naddress = "{server.url}"\n[env]\n'
                        + "\n".join(env_lines) + "\n")
        environ = {"VAULT_TOKEN": server.token, "PATH": os.environ.get("PATH", "")}
        base, push, rotate = [], [], []
        for run in range(args.repeat):
            client = server.client()
            start = time.perf_counter()
            for i in range(SECRETS):
                try:
                    client.secrets.kv.v2.read_secret_version(path=f"bench/s{i}", mount_point="secret",
                                                             raise_on_deleted_version=True)
                except Exception:  # noqa: BLE001 - the first run creates them
                    pass
                client.secrets.kv.v2.create_or_update_secret(
                    path=f"bench/s{i}", secret={"user": f"u{run}", "password": adopt.generate()}, mount_point="secret")
            base.append(time.perf_counter() - start)
            values = {}
            for i in range(SECRETS):
                values[f"U{i}"], values[f"P{i}"] = f"user-{run}", adopt.generate()
            start = time.perf_counter()
            session = Session(load(str(path)), environ=environ)
            adopt.push(session, values, overwrite=True)
            session.close()
            push.append(time.perf_counter() - start)
            start = time.perf_counter()
            session = Session(load(str(path)), environ=environ)
            adopt.rotate(session, [f"P{i}" for i in range(SECRETS)])
            session.close()
            rotate.append(time.perf_counter() - start)
    b, p, r = (statistics.median(x) for x in (base, push, rotate))
    print(f"{SECRETS} secrets, {2 * SECRETS} variables, median of {args.repeat} runs, local OpenBao")
    print(f"  hvac read+write (baseline)  {b * 1000:8.1f} ms  1.00x")
    print(f"  secretrun push              {p * 1000:8.1f} ms  {p / b:.2f}x")
    print(f"  secretrun rotate            {r * 1000:8.1f} ms  {r / b:.2f}x")


if __name__ == "__main__":
    main()
