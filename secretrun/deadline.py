"""An overall deadline for every store request, whatever the store.

A client's own ``timeout`` bounds each socket read, not a request: a server
that answers one byte every 0.3 s never trips a 1 s read timeout, and a
100 kB body would take hours. So every call into a network provider
(``fetch``, ``fetch_batch``, ``probe``) runs in a thread of its own, and the
caller waits at most ``DEADLINE_FACTOR * timeout`` for its outcome (three
times: room for a connection and a read each within ``timeout``, and for
botocore's own second attempt, so a store that is merely slow still fails
with its SDK's own message). Past the deadline the request counts as
``Unavailable`` (retried like any other outage); the thread is abandoned,
and when it ends its result is dropped. One mechanism for Vault, AWS, GCP,
Azure and any provider to come, without knowing their transports.

Abandoned threads hold a socket until the server lets go. At most
``HANGING_MAX`` per provider may be pending: past that, new requests to it
fail at once instead of piling up more.

``_thread`` only: the exec path must not pay for ``threading``.
"""

from __future__ import annotations

import _thread
from typing import Any, Callable, Dict, TypeVar

from .errors import Unavailable

T = TypeVar("T")

DEADLINE_FACTOR = 3.0
HANGING_MAX = 4

_hanging: Dict[str, int] = {}
_hanging_lock = _thread.allocate_lock()


def hanging(name: str) -> int:
    """How many abandoned requests to provider ``name`` are still running."""
    with _hanging_lock:
        return _hanging.get(name, 0)


def within(seconds: float, call: Callable[[], T], name: str) -> T:
    """``call()``'s result or exception, if it comes within ``seconds``;
    else ``Unavailable`` naming provider ``name``."""
    if hanging(name) >= HANGING_MAX:
        raise Unavailable(f"provider '{name}': {HANGING_MAX} earlier requests are still waiting for "
                          "the store to finish answering")
    done = _thread.allocate_lock()
    done.acquire()
    box: list = []
    state = {"abandoned": False}

    def run() -> None:
        try:
            box.append((True, call()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as is
            box.append((False, exc))
        finally:
            with _hanging_lock:
                if state["abandoned"]:
                    _hanging[name] -= 1
                done.release()

    _thread.start_new_thread(run, ())
    if not done.acquire(timeout=max(seconds, 0.001)):
        with _hanging_lock:
            if not box:
                state["abandoned"] = True
                _hanging[name] = _hanging.get(name, 0) + 1
        if state["abandoned"]:
            raise Unavailable(f"provider '{name}': no complete answer within {seconds:g}s "
                              "(the store is answering too slowly)")
        done.acquire()
    ok, value = box[0]
    if ok:
        return value
    raise value


def request_deadline(provider: Any) -> float:
    """The deadline of one call into ``provider``: ``DEADLINE_FACTOR`` times
    its own ``timeout`` option when it has one (Vault), else ``settings.timeout``."""
    own = getattr(provider, "timeout", None)
    base = own if isinstance(own, (int, float)) and own > 0 else provider.ctx.timeout
    return DEADLINE_FACTOR * float(base)


def bounded(provider: Any, call: Callable[[], T]) -> T:
    """``call`` (a request to ``provider``) under its deadline; local stores
    (env, dotenv, file) are called directly."""
    if getattr(provider, "local", False):
        return call()
    return within(request_deadline(provider), call, provider.name)
