"""Secret Manager's resource names: what a reference may be (``SECRET``,
a version, ``projects/P[/locations/L]/secrets/S[/versions/V]``) and the
name it stands for. No SDK here."""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

_SECRET_ID = r"[A-Za-z0-9_-]{1,255}"
_VERSION = re.compile(r"^(latest|[1-9][0-9]*|[A-Za-z][A-Za-z0-9_-]{0,62})$")
_SHORT = re.compile(rf"^({_SECRET_ID})$")
_FULL = re.compile(rf"^projects/([^/]+)/(?:locations/([^/]+)/)?secrets/({_SECRET_ID})(?:/versions/([^/]+))?$")
_LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class _Name(NamedTuple):
    project: str
    location: Optional[str]
    secret: str
    version: str

    @property
    def parent(self) -> str:
        return f"projects/{self.project}" + (f"/locations/{self.location}" if self.location else "")

    @property
    def secret_name(self) -> str:
        return f"{self.parent}/secrets/{self.secret}"

    @property
    def version_name(self) -> str:
        return f"{self.secret_name}/versions/{self.version}"

    def __str__(self) -> str:
        return f"secret {self.secret_name} (version {self.version})"
