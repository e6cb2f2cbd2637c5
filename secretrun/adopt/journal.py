"""The journal beside the manifest (``.secretrun-journal.json``, mode
0600): every write's variables, provider, reference and versions, never a
value; and ``rollback``, which undoes its latest record."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Mapping, Optional

from ..errors import Kind, Problem, ProblemReport, ProviderError, in_words
from ..manifest import Manifest
from ..providers.base import Secret, SecretId
from .plan import Row, Target, _call, _problem, _raise, targets

JOURNAL = ".secretrun-journal.json"


def journal_path(manifest: Manifest) -> str:
    return os.path.join(manifest.base_dir, JOURNAL)


def read_journal(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            from ..perms import writable_by_others

            unsafe = writable_by_others(os.fstat(handle.fileno()))
            if unsafe:
                raise ProblemReport([Problem(Kind.MANIFEST, f"the journal {unsafe}: its entries decide what "
                                             "rollback writes", location=path)], title="journal untrusted")
            data = json.load(handle)
    except FileNotFoundError:
        return {"version": 1, "records": []}
    except (OSError, ValueError) as exc:
        raise ProblemReport([Problem(Kind.MANIFEST, f"the journal cannot be read ({in_words(exc)})",
                                     location=path)], title="journal unreadable") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ProblemReport([Problem(Kind.MANIFEST, "the journal is not a secretrun journal", location=path)],
                            title="journal unreadable")
    return data


def write_journal(path: str, data: Mapping[str, Any]) -> None:
    """Atomically, mode 0600: it names every secret and version
    (``safefile.write_file``: no planted link is followed)."""
    from ..safefile import write_file

    write_file(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), 0o600)


def record(path: str, command: str, entries: List[Dict[str, Any]]) -> None:
    if not entries:
        return
    data = read_journal(path)
    data["records"].append({"time": _now(), "command": command, "entries": entries})
    write_journal(path, data)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _entry(target: Target, now: Optional[Secret], version: Optional[str]) -> Dict[str, Any]:
    return {"time": _now(), "variables": list(target.variables), "provider": target.provider,
            "reference": str(target.sid), "previous": now.version if now else None,
            "existed": now is not None, "new": version}


def rollback(session) -> List[Row]:
    """Undo the latest journal record not yet undone: each secret's recorded
    previous version is read and written again as the newest version. A
    secret the record created is left as it is (there is no earlier value)."""
    manifest: Manifest = session.manifest
    path = journal_path(manifest)
    data = read_journal(path)
    pending = [r for r in data["records"] if not r.get("rolled_back") and r.get("command") in ("push", "rotate")]
    if not pending:
        raise ProblemReport([Problem(Kind.MISSING, "the journal has nothing to roll back", location=path)],
                            title="rollback failed")
    rec = pending[-1]
    rows: List[Row] = []
    problems: List[Problem] = []
    undone: List[Dict[str, Any]] = []
    # Only what the manifest still references, through the provider it names:
    # a journal entry is data, not an order to write with the operator's credentials.
    referenced = {(t.provider, t.sid.path) for t in targets(session.manifest)[0]}
    for entry in rec["entries"]:
        name = entry["provider"]
        variables = entry.get("variables") or []
        sid = _parse_sid(str(entry.get("reference", "")))
        if sid.provider != name or (name, sid.path) not in referenced:
            problems.append(Problem(Kind.MANIFEST, f"the journal names {entry.get('reference')!r} through provider "
                                    f"{name!r}, which this manifest does not reference; not rolled back",
                                    location=path))
            continue
        provider = session.provider(name)
        if provider is None:
            problems += list(session.provider_problems.values())
            continue
        if not entry.get("existed") or entry.get("previous") is None:
            rows += [Row(v, entry["reference"], "kept (created by that push, or the store keeps no versions)")
                     for v in variables]
            continue
        target = Target(sid, name, tuple((v, None) for v in variables))
        try:
            old = _call(provider, lambda: provider.fetch(sid._replace(version=str(entry["previous"]))))
            version = _call(provider, lambda: provider.write(sid, old.value))
        except ProviderError as exc:
            problems.append(_problem(exc, target))
            continue
        undone.append({"time": _now(), "variables": variables, "provider": name, "reference": entry["reference"],
                       "previous": entry.get("new"), "existed": True, "new": version,
                       "restored": entry["previous"]})
        rows += [Row(v, entry["reference"], f"restored {entry['previous']}", version) for v in variables]
    if not problems:
        rec["rolled_back"] = _now()
    data["records"].append({"time": _now(), "command": "rollback", "entries": undone})
    write_journal(path, data)
    _raise(problems, "rollback failed part way (the journal lists what was restored)")
    return rows


def _parse_sid(text: str) -> SecretId:
    provider, _, path = text[2:-1].partition(":")
    return SecretId(provider, path)
