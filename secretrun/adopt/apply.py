"""``push`` and ``rotate``: every target read and planned first, nothing
written when anything is wrong, then each write recorded in the journal;
and their inputs (the values to push, an age)."""

from __future__ import annotations

import time
from typing import Dict, List, Mapping, Optional, Tuple

from ..errors import Kind, NotFound, Problem, ProblemReport, ProviderError
from ..manifest import Manifest
from .generator import value_for
from .journal import _entry, journal_path, record
from .plan import Row, _call, _problem, _providers, _raise, _ref_text, current, desired, targets


def push(session, values: Mapping[str, str], dry_run: bool = False, overwrite: bool = False) -> List[Row]:
    """Write each writable secret whose variables have a value in ``values``.

    Nothing is written when anything is wrong: every target is read and
    planned first, and a different value already in a store is refused
    (naming every such variable) unless ``overwrite``."""
    manifest: Manifest = session.manifest
    wanted, problems = targets(manifest)
    absent = [Row(n, _ref_text(t, n), "skipped (no value in the source)") for t in wanted for n in t.variables
              if n not in values]
    wanted = [t for t in wanted if any(v in values for v in t.variables)]
    providers, setup = _providers(session, wanted)
    _raise(setup, "push failed")
    session.log.redact.add([v for v in values.values() if v])
    plans = []
    rows: List[Row] = []
    for target in wanted:
        provider = providers[target.provider]
        planned = _plan_one(provider, target, values, problems)
        if planned is None:
            continue
        now, value, actions = planned
        plans.append((target, provider, now, value, actions))
        for name, _ in target.uses:
            if name in actions:
                rows.append(Row(name, _ref_text(target, name), actions[name]))
    _raise(problems, "push failed")
    if dry_run:
        return rows + absent
    refused = [Problem(Kind.MISSING, "the store holds a different value; --overwrite replaces it",
                       variable=name, provider=t.provider, reference=_ref_text(t, name))
               for t, _, _, _, actions in plans for name, act in actions.items() if act == "replace"]
    if refused and not overwrite:
        raise ProblemReport(refused, title="push refused, nothing written")
    return _write_all(plans, manifest, "push", problems) + absent


def rotate(session, names: List[str], length: Optional[int] = None, alphabet: Optional[str] = None,
           older_than: Optional[float] = None) -> Tuple[List[Row], List[Problem]]:
    """Write a new generated value for each variable (with ``older_than``,
    for every writable variable whose current version is older than that many
    seconds). Returns the rows and the warnings (stores that report no age).

    The previous version stays readable in every store (KV v2 versions,
    ``AWSPREVIOUS``, GCP and Key Vault versions, SSM history), so apps that
    have not restarted yet keep working for a grace period."""
    manifest: Manifest = session.manifest
    by_age = older_than is not None and not names
    wanted, problems = targets(manifest, None if by_age else names)
    _raise(problems, "rotate refused")
    providers, setup = _providers(session, wanted)
    _raise(setup, "rotate failed")
    warnings: List[Problem] = []
    if older_than is not None:
        kept = []
        for target in wanted:
            provider = providers[target.provider]
            try:
                changed = _call(provider, lambda: provider.changed_at(target.sid))
            except NotFound:
                # No age to compare; creating secrets is for ``push`` or a
                # rotation by name, not a side effect of a scheduled job.
                warnings.append(Problem(Kind.MISSING, "does not exist; not rotated (name it to create it)",
                                        variable=", ".join(target.variables), reference=str(target.sid)))
                continue
            except ProviderError as exc:
                problems.append(_problem(exc, target))
                continue
            if changed is None:
                warnings.append(Problem(Kind.MISSING, "the store reports no age; not rotated",
                                        variable=", ".join(target.variables), reference=str(target.sid)))
            elif time.time() - changed > older_than:
                kept.append(target)
        wanted = kept
        _raise(problems, "rotate failed")
    plans = []
    for target in wanted:
        provider = providers[target.provider]
        new = {name: value_for(manifest.env[name], length, alphabet) for name, _ in target.uses}
        session.log.redact.add(new.values())
        planned = _plan_one(provider, target, new, problems)
        if planned is None:
            continue
        plans.append((target, provider, planned[0], planned[1], {n: "rotated" for n, _ in target.uses}))
    _raise(problems, "rotate failed, nothing written")
    return _write_all(plans, manifest, "rotate", problems), warnings


def parse_age(text: str) -> float:
    """``90d``, ``12h``, ``30m``... as seconds (``units.parse_duration``)."""
    from ..units import parse_duration

    seconds = parse_duration(text.strip())
    if seconds is None:
        raise ValueError(f"{text!r} is not a duration (90d, 12h, 30m, 45s)")
    return seconds


def source_values(dotenv: Optional[str], environ: Optional[Mapping[str, str]], names) -> Dict[str, str]:
    """The values to push, by variable name, from a dotenv file or an
    environment; only the names asked for."""
    if dotenv is not None:
        from ..providers.dotenv import read_dotenv

        try:
            raw = read_dotenv(dotenv, "dotenv file")
        except ProviderError as exc:
            raise ProblemReport([Problem(exc.kind, str(exc), location=dotenv)], title="push failed") from None
    else:
        raw = dict(environ or {})
    return {name: value for name in names if (value := raw.get(name)) is not None}


def _plan_one(provider, target, values, problems: list):
    """What one target holds now and what it should hold (``current``,
    ``desired``), or None with its problem recorded: push and rotate plan
    every target before writing any."""
    try:
        provider.check(target.sid)
        now = current(provider, target.sid)
        value, actions = desired(target, now, values, provider)
    except ProviderError as exc:
        problems.append(_problem(exc, target))
        return None
    return now, value, actions


def _write_all(plans: list, manifest, command: str, problems: list) -> List[Row]:
    """Write each planned target in order, stopping at the first failed write,
    and journal every write made (the journal is what makes rollback safe).
    A target whose every variable is unchanged is not written."""
    rows: List[Row] = []
    entries = []
    try:
        for target, provider, now, value, actions in plans:
            if all(a == "unchanged" for a in actions.values()):
                rows += [Row(n, _ref_text(target, n), "unchanged", now.version if now else None) for n in actions]
                continue
            try:
                version = _call(provider, lambda: provider.write(target.sid, value))
            except ProviderError as exc:
                problems.append(_problem(exc, target))
                break  # stop at the first failed write; what was written is journalled below
            entries.append(_entry(target, now, version))
            rows += [Row(n, _ref_text(target, n), actions[n], version) for n in actions]
    finally:
        record(journal_path(manifest), command, entries)
    _raise(problems, f"{command} failed part way (the journal lists what was written)")
    return rows
