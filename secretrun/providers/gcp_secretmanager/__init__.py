"""``gcp-secretmanager``: Google Cloud Secret Manager, through the official
gRPC client (google-cloud-secret-manager).

Options (all optional):

- ``project``: for short references; default ``GOOGLE_CLOUD_PROJECT``, then
  the project of the Application Default Credentials.
- ``location``: a region for regional secrets; short references then name
  ``projects/P/locations/L/secrets/S`` and go to the regional endpoint
  ``secretmanager.L.rep.googleapis.com``.
- ``endpoint``: ``host[:port]`` instead of Google's (private endpoints, tests).
- ``insecure``: plaintext gRPC with no credentials, to ``endpoint`` only.

References: ``SECRET``, ``SECRET?version=N`` (a number, an alias, default
``latest``), or a full ``projects/P[/locations/L]/secrets/S[/versions/V]``.

Credentials are Application Default Credentials, untouched:
``GOOGLE_APPLICATION_CREDENTIALS`` (service account key, workload identity
federation), the metadata server (GKE workload identity, Cloud Run, GCE), or
``gcloud auth application-default login``.

Change detection costs no extra call: ``Secret.version`` is the version number
AccessSecretVersion itself resolved ``latest`` to, and ``probe`` returns None
(refetch and compare). Secret Manager allows 600 metadata reads a minute per
project against 90,000 accesses, so a polling fleet must never read metadata.

A payload whose ``data_crc32c`` does not match its bytes is refused. The
checksum is computed here with a table-driven CRC-32C: ``google-crc32c`` is
not among the client library's dependencies, and payloads are at most 64 KiB
(13 ms for the largest).

The parts: ``provider`` (credentials, clients and the verbs), ``names``
(references to resource names), ``errors`` (the one translation table) and
``checksum`` (CRC-32C).
"""

from .checksum import crc32c
from .provider import GcpSecretManagerProvider

__all__ = ["GcpSecretManagerProvider", "crc32c"]
