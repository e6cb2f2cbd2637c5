"""Adoption tools: ``push`` values into stores, ``rotate`` them, ``generate`` one.

Everything goes through the providers' own verbs (``fetch`` to read what is
there, ``write`` to store a new version), so errors map to the same exit codes
as reads and no value reaches any output: what is printed is names,
references, actions and version ids.

A *target* is one secret in a writable store, with the manifest variables
that read it. A variable counts when its value is exactly one reference
(``${aws:prod/db#password}``); variables of one secret are written together,
fields of a JSON secret or a Vault KV map in one version, the secret's other
fields kept.

Every write is recorded in a journal beside the manifest
(``.secretrun-journal.json``, mode 0600): time, variables, provider,
reference, previous version, new version, never a value. ``rollback`` reads
each recorded previous version back from the store and writes it again as a
new version (every store keeps old versions; none is changed in place).

The package reads as the steps: ``generator`` (new values), ``plan``
(targets and what to write), ``apply`` (``push``, ``rotate``), ``journal``
(the record of every write, and ``rollback``).
"""

from __future__ import annotations

from ..errors import ProblemReport
from .apply import parse_age, push, rotate, source_values
from .generator import ALPHABETS, DEFAULT_LENGTH, alphabet_named, class_of, generate, value_for
from .journal import JOURNAL, journal_path, read_journal, record, rollback, write_journal
from .plan import Row, Target, current, desired, targets, writable

__all__ = ["ALPHABETS", "DEFAULT_LENGTH", "JOURNAL", "ProblemReport", "Row", "Target", "alphabet_named", "class_of",
           "current", "desired", "generate", "journal_path", "parse_age", "push", "read_journal", "record",
           "rollback", "rotate", "source_values", "targets", "value_for", "writable", "write_journal"]
