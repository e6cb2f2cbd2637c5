"""The manifest's records: what ``manifest.load`` returns (``Manifest`` and
the ``Settings``, ``ProviderConfig``, ``EnvVar`` and ``Import`` it holds),
with the values their string fields may take. Built by ``manifest_check``,
re-exported by ``manifest``."""

from __future__ import annotations

import os
import signal
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Optional, Tuple

from .template import Ref, Template

ON_CHANGE = ("restart", "signal", "exit")
VAR_ON_CHANGE = ("restart", "signal", "ignore")
ON_MISSING = ("fail", "warn")


class Settings(NamedTuple):
    """``[settings]``; durations in seconds, signals as numbers."""

    inherit_env: bool = True       # false: the child gets only the manifest's variables, plus PATH
    watch: bool = False
    poll_interval: float = 30.0
    on_change: str = "restart"     # restart | signal | exit
    reload_signal: int = signal.SIGHUP
    stop_signal: int = signal.SIGTERM
    kill_timeout: float = 10.0
    splay: float = 0.0
    strict: bool = False           # no fallback, no defaults, dangerous values refused
    fallback: Optional[str] = None     # a dotenv file, resolved against the manifest's directory
    file_vars: bool = False        # NAME_FILE=/path in the environment gives the child NAME
    mask_output: bool = False
    timeout: float = 10.0          # each store request
    retries: int = 3               # extra attempts after a transient store error
    max_stale: Optional[float] = None  # watching: stop the child after stores are down this long
    revoke_on_exit: bool = False
    status_file: Optional[str] = None
    file_dir: Optional[str] = None     # where ``file = true`` values are written
    debounce: Optional[float] = None   # watching: settle time before acting on a change
    audit_log: Optional[str] = None    # a path, or "stderr": one JSON line per access and change
    on_missing: str = "fail"       # warn: a secret that does not exist leaves its variable unset
    user: Optional[str] = None         # run the command as this user (name, uid, NAME:GROUP, UID:GID)
    listen: Tuple[str, ...] = ()       # sockets secretrun binds for the command (sockets.py)
    ready: Optional[str] = None        # readiness of a new command in an overlapping restart (readiness.py)
    ready_timeout: float = 30.0


class ProviderConfig(NamedTuple):
    name: str
    type: str
    options: Mapping[str, Any]     # raw; strings may be templates, rendered before the provider is built
    templates: Tuple[Tuple[Tuple[str, ...], Template], ...] = ()   # option key path -> parsed template


class EnvVar(NamedTuple):
    name: str
    template: Template
    required: bool = True
    default: Optional[str] = None
    min_length: Optional[int] = None
    pattern: Optional[Any] = None  # pattern.compile_pattern: RE2, linear time
    forbid: Tuple[str, ...] = ()
    file: bool = False
    on_change: Optional[str] = None
    unique: bool = False           # the value must differ from every other unique variable's
    description: Optional[str] = None   # for people, and for `secretrun example`


class Import(NamedTuple):
    ref: Ref
    prefix: str = ""
    required: bool = True
    normalize: bool = False        # upper-case names, other characters to ``_``
    on_change: Optional[str] = None
    allow: Tuple[str, ...] = ()    # loader/interpreter variables this import may set (loadervars.py)

    @property
    def label(self) -> str:
        return f"[[import]] {self.ref.text}"


class Manifest(NamedTuple):
    path: str
    settings: Settings
    providers: Mapping[str, ProviderConfig]
    env: Mapping[str, EnvVar]
    imports: Tuple[Import, ...]
    profile: Optional[str] = None
    # ``-e NAME=VALUE`` from the command line: they override ``[env]`` (a
    # same-named ``[env]`` entry's checks still apply to them).
    extras: Mapping[str, Template] = MappingProxyType({})

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


def is_env_name(name: str) -> bool:
    """Letters, digits and ``_``, not starting with a digit (ASCII only)."""
    return bool(name) and name.isascii() and not name[0].isdigit() and name.replace("_", "a").isalnum()
