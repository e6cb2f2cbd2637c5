"""Kubernetes' watch as a change source (``Provider.changes``).

One watch per namespace (the provider has one kind), in a thread of its own:

- it starts with a LIST, whose objects are delivered (so nothing that
  changed between the first resolution and the watch is missed) and whose
  ``resourceVersion`` the WATCH starts from;
- a single followed object is watched with ``fieldSelector=metadata.name=N``,
  which a Role limited by ``resourceNames`` allows; several are watched
  namespace-wide (RBAC must allow list and watch there);
- ``allowWatchBookmarks``: the API server's bookmarks advance the
  ``resourceVersion`` to resume from, so a reconnect after a quiet hour does
  not start from a version the server has forgotten;
- a stream the server ends (``timeoutSeconds``) or that drops is resumed at
  once from the last ``resourceVersion``; 410 Gone (that version is no longer
  kept) starts over with a LIST;
- failures back off exponentially with jitter; the second failure in a row
  (or a refusal) tells the sink the stream is lost, so those secrets are
  polled until a reconnect succeeds.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

import httpx2 as httpx

from ..errors import Denied, NotFound, ProviderError, Unavailable, in_words
from .base import SecretId
from .capabilities import ChangeSink
from .kubernetes import (
    Api,
    Target,
    described,
    object_path,
    request_json,
    status_error,
    to_secret,
    transport_error,
)

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# The server ends each watch after this long (randomized, as client-go does,
# so a fleet does not reconnect in step); the read timeout allows for it.
WATCH_SECONDS = (240, 300)


class _Relist(Exception):
    """410 Gone: the resourceVersion to resume from is no longer kept."""


class Watches:
    """The watches of one provider; ``close()`` stops them."""

    def __init__(self, api: Api, targets: Mapping[SecretId, Target], sink: ChangeSink, provider: str) -> None:
        by_namespace: Dict[str, Dict[str, List[SecretId]]] = {}
        for sid, target in targets.items():
            by_namespace.setdefault(target.namespace, {}).setdefault(target.name, []).append(sid)
        self._stop = threading.Event()
        self.watches = [NamespaceWatch(api, namespace, names, sink, self._stop)
                        for namespace, names in by_namespace.items()]
        self._threads = [threading.Thread(target=w.run, name=f"secretrun-watch-{provider}-{w.namespace}",
                                          daemon=True) for w in self.watches]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        for watch in self.watches:
            watch.interrupt()
        for thread in self._threads:
            thread.join(timeout=1.0)


class NamespaceWatch:
    """LIST then WATCH one namespace's objects of one kind, for ever."""

    def __init__(self, api: Api, namespace: str, names: Dict[str, List[SecretId]], sink: ChangeSink,
                 stop: threading.Event, rand=random.random) -> None:
        self.api = api
        self.namespace = namespace
        self.names = names
        self.sids: Tuple[SecretId, ...] = tuple(s for group in names.values() for s in group)
        self.sink = sink
        self.stop = stop
        self.rand = rand
        self.selector: Dict[str, str] = {}
        if len(names) == 1:
            self.selector = {"fieldSelector": f"metadata.name={next(iter(names))}"}
        self.resource_version: Optional[str] = None
        self.failures = 0
        self.lost = False
        self._response: Optional[httpx.Response] = None

    def run(self) -> None:
        while not self.stop.is_set():
            listed = False
            try:
                if self.resource_version is None:
                    self._list()
                    listed = True
                self._watch()
            except _Relist:
                self.resource_version = None
                if listed:   # a version just listed is already gone: do not spin
                    self._failed(Unavailable(f"the API server keeps answering 410 Gone to the watch of "
                                             f"{self.api.resource} in namespace {self.namespace}"))
            except ProviderError as exc:
                self._failed(exc)
            except Exception as exc:  # noqa: BLE001 - a dropped stream, a malformed event
                if self.stop.is_set():
                    return
                self._failed(Unavailable(f"the watch of {self.api.resource} in namespace {self.namespace} "
                                         f"failed ({in_words(exc)})"))

    def interrupt(self) -> None:
        """End a read blocked on the stream, from another thread: closing the
        response would wait for it, shutting the socket down does not."""
        response = self._response
        if response is None:
            return
        try:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # noqa: BLE001 - it may be closing already
            pass

    # --- LIST and WATCH ---

    def _list(self) -> None:
        body = request_json(self.api, "list", self.namespace, params=self.selector or None)
        found = {}
        for item in body.get("items") or ():
            name = (item.get("metadata") or {}).get("name")
            if name in self.names:
                found[name] = item
        outcomes: Dict[SecretId, Any] = {}
        for name in self.names:
            outcomes.update(self._outcomes(name, found.get(name)))
        self.resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        self.sink.changed(outcomes)
        self._connected()

    def _watch(self) -> None:
        seconds = random.randint(*WATCH_SECONDS)
        params = dict(self.selector, watch="true", allowWatchBookmarks="true", timeoutSeconds=str(seconds))
        if self.resource_version:
            params["resourceVersion"] = self.resource_version
        connect = self.api.client.timeout.connect
        timeout = httpx.Timeout(connect, read=seconds + 30.0)
        path = object_path(self.api.resource, self.namespace)
        what = f"the watch of {self.api.resource} in namespace {self.namespace}"
        try:
            with self.api.client.stream("GET", path, params=params, timeout=timeout) as response:
                self._response = response
                if response.status_code == 410:
                    raise _Relist()
                if response.status_code != 200:
                    raise status_error(response.status_code, "watch", self.api.resource, self.namespace,
                                       what, self.api.server, response.headers.get("Retry-After"))
                self._connected()
                for line in response.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.strip():
                        self._event(json.loads(line))
        except (_Relist, ProviderError):
            raise
        except Exception as exc:  # noqa: BLE001
            if self.stop.is_set():
                return
            raise transport_error(exc, what, self.api.server) from None
        finally:
            self._response = None

    def _event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Relist()
            raise Unavailable(f"the watch of {self.api.resource} in namespace {self.namespace} ended "
                              f"with an error ({obj.get('code')})")
        if meta.get("resourceVersion"):
            self.resource_version = str(meta["resourceVersion"])
        if kind == "BOOKMARK" or meta.get("name") not in self.names:
            return
        self.sink.changed(self._outcomes(meta["name"], None if kind == "DELETED" else obj))

    def _outcomes(self, name: str, obj: Optional[Mapping[str, Any]]) -> Dict[SecretId, Any]:
        target = Target(self.namespace, name)
        if obj is None:
            outcome: Any = NotFound(f"{described(self.api.resource, target)} does not exist in {self.api.server}")
        else:
            try:
                outcome = to_secret(obj, self.api.resource, target)
            except ProviderError as exc:
                outcome = exc
        return {sid: outcome for sid in self.names[name]}

    # --- health ---

    def _connected(self) -> None:
        self.failures = 0
        if self.lost:
            self.lost = False
            self.sink.restored(self.sids)

    def _failed(self, error: ProviderError) -> None:
        if self.stop.is_set():
            return
        self.failures += 1
        refused = isinstance(error, Denied) or not getattr(error, "retryable", False)
        if not self.lost and (refused or self.failures >= 2):
            self.lost = True
            self.sink.lost(self.sids, str(error))
        if self.failures == 1 and not refused:
            delay = 0.1 * self.rand()   # a dropped stream: resume at once
        else:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(self.failures, 10))
            delay = max(delay, getattr(error, "retry_after", None) or 0.0) * (0.5 + 0.5 * self.rand())
        self.stop.wait(delay)
