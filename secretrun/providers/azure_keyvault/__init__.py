"""``azure-keyvault``: secrets from Azure Key Vault.

A reference's path is the secret's name, checked up front against Key Vault's
rule (1-127 letters, digits and ``-``); ``?version=`` is a version id (the last
segment of the secret's id). ``fetch`` returns the value as text, or for an
``[[import]]`` the JSON object it holds; ``Secret.version`` is the version id
read. ``probe`` reads the latest version id (see there for its cost).

The store is ``vault_url`` or ``vault`` (a name, for ``https://NAME.vault.azure.net``).
The credential is chosen by ``credential``:

- ``default``: the order of azure-identity's ``DefaultAzureCredential``: a
  service principal from the environment (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``
  and ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH``), then
  workload identity (``AZURE_FEDERATED_TOKEN_FILE``), then the rest of
  ``DefaultAzureCredential`` (managed identity, Azure CLI, ...). The first two
  are read from secretrun's environment (``ctx.environ``), so the Python API's
  ``environ`` is honoured and the client secret can be kept from the child
  (``consumed_env``); like ``DefaultAzureCredential``, a configured one is
  final: its failure is not hidden by trying the next.
- ``environment``, ``workload-identity``, ``managed-identity``, ``azure-cli``:
  that one alone.

``tenant_id`` / ``client_id`` override ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_ID``
(for managed identity, ``client_id`` picks a user-assigned identity).
``authority_host`` (default ``AZURE_AUTHORITY_HOST``, else the public cloud),
``disable_instance_discovery``, ``ca_cert`` and ``verify_challenge_resource``
serve sovereign clouds, Azure Stack, private endpoints and tests.

Retries belong to the resolver: the SDK's own retry policy is set to zero
attempts, and every call is bounded by ``ctx.timeout``.

The parts: ``provider`` (the verbs and the options), ``credentials`` (which
credential signs in), ``transport`` (the HTTP session and the Key Vault
client), ``errors`` (the one place SDK failures become ours).
"""

from .provider import AzureKeyVaultProvider
from .transport import _proxies

__all__ = ["AzureKeyVaultProvider", "_proxies"]
