"""Google credentials of a ``gs://`` target: the client built with them, and noticing
that a refused key file has since been replaced (a rotated key), without a restart.

Where the credentials come from, first match wins:

* ``STORAGE_EMULATOR_HOST`` set and no ``endpoint_url`` on the target: anonymous
  credentials against the emulator (fake-gcs-server checks none). Nothing else
  is looked up.
* A key file: the target's ``credentials_file``, else ``GOOGLE_APPLICATION_CREDENTIALS``.
  A service-account key is read and loaded here, from the very bytes whose
  identity (its ``private_key_id``) is remembered, so "has the file changed
  since?" compares like with like. Another kind of credentials file named by
  ``GOOGLE_APPLICATION_CREDENTIALS`` (gcloud user credentials, a workload
  identity federation config) is loaded by the library as before; its identity
  is the SHA-256 of its bytes.
* Otherwise Application Default Credentials as the library finds them (gcloud's
  user credentials, a GCP host's metadata server, GKE workload identity): these
  refresh and rotate by themselves, so there is no file to watch.

``endpoint_url`` points the last two at another endpoint (a private or
restricted endpoint, a proxy, a test stand-in) with the real credentials.

Rotation, as the S3 backend does it: the backend asks :meth:`Logins.rotated`
when a call was refused for its credentials (HTTP 401/403, or the token
endpoint refusing the key, google-auth's ``RefreshError``). If the key file now
holds another key, the client is rebuilt with it and the call is worth retrying;
if it holds the refused one, the refusal is permanent until someone replaces it.
A call made with an older client than the current one (another thread rotated
in the meantime) is worth retrying too, so concurrent uploads that all met the
old key do not fail because only the first of them saw the file change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipper.errors import ConfigError, PermissionDenied

log = logging.getLogger(__name__)

_HOW = (
    "Set GOOGLE_APPLICATION_CREDENTIALS (or the target's credentials_file) to a service "
    "account key file (or run `gcloud auth application-default login`, or run on a GCP "
    "host with a service account); for an emulator such as fake-gcs-server set "
    "STORAGE_EMULATOR_HOST"
)


@dataclass(frozen=True)
class Login:
    """One storage client and the credentials it was built with."""

    client: Any
    #: what the key file held when ``client`` was built (``key ID of EMAIL``, or
    #: ``sha256 ...``); None: no file is watched (emulator, ADC, an injected client)
    identity: str | None = None


class Logins:
    """The current :class:`Login` of one ``gs://`` target, rebuilt when its key file
    is replaced."""

    def __init__(
        self,
        url: str,
        *,
        project: str | None = None,
        endpoint_url: str | None = None,
        credentials_file: str | None = None,
        client: Any = None,
    ) -> None:
        self.url = url
        self.project = project
        if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"target {url}: endpoint_url {endpoint_url!r} must be an http:// or https:// URL"
            )
        self.endpoint_url = endpoint_url
        # STORAGE_EMULATOR_HOST keeps meaning "anonymous emulator"; an explicit
        # endpoint_url is a real endpoint, with real credentials
        self.injected = client is not None  # a test's client: not ours to rebuild
        self.emulator = None
        if not self.injected and not endpoint_url:
            self.emulator = os.environ.get("STORAGE_EMULATOR_HOST") or None
        self.key_file: Path | None = None
        self._explicit = bool(credentials_file)
        if not self.injected and not self.emulator:
            path = credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            self.key_file = Path(path).expanduser() if path else None
        self._lock = threading.Lock()
        self.current = Login(client) if client is not None else self._login()

    # ------------------------------------------------------------------ rotation

    def rotated(self, used: Login) -> bool:
        """Whether a call refused with ``used``'s credentials may succeed if made again:
        a newer client is already in place, or the key file now holds other
        credentials (then a client is built with them, and a warning logged)."""
        if self.key_file is None:
            return False  # nothing of ours to reload: ADC and metadata tokens renew themselves
        with self._lock:
            if self.current is not used:
                return True  # another call saw the new key first
            try:
                identity, info = _read(self.key_file)
            except (OSError, ValueError) as e:
                log.warning(
                    "%s: could not read %s to see whether it was replaced: %s",
                    self.url,
                    self.key_file,
                    e,
                )
                return False
            if identity == used.identity:
                return False
            try:
                self.current = self._login(identity, info)
            except (PermissionDenied, ConfigError) as e:
                log.warning("%s: the replaced key file cannot be used: %s", self.url, e)
                return False
            log.warning(
                "%s: Google credentials in %s changed (rotated: %s, was %s); using the new ones",
                self.url,
                self.key_file,
                identity,
                used.identity,
            )
            return True

    def explain(self, login: Login) -> str:
        """Which credentials ``login`` used and what to check, for a refusal's message."""
        if self.key_file is not None:
            return (
                f"{login.identity} from {self.key_file}: check that this key is still active "
                "in IAM, not deleted or disabled, and that the file holds the current key; "
                "after a rotation, write the new key file at the same path"
            )
        if self.injected:
            return "the credentials of the client the backend was given"
        if self.emulator:
            return (
                f"anonymous credentials for the emulator at {self.emulator} "
                "(STORAGE_EMULATOR_HOST); for an endpoint that checks credentials set the "
                "target's endpoint_url instead"
            )
        return (
            "Application Default Credentials: check `gcloud auth application-default login` "
            "or this host's service account"
        )

    # ------------------------------------------------------------------ building

    def _login(self, identity: str | None = None, info: dict[str, Any] | None = None) -> Login:
        try:
            from google.cloud import storage  # type: ignore[attr-defined]
        except ImportError as e:
            raise ConfigError(
                f"target {self.url}: gs:// needs google-cloud-storage: "
                "pip install 'binlog-shipper[gcp]'"
            ) from e

        if self.emulator:
            from google.auth.credentials import AnonymousCredentials

            endpoint = self.emulator
            if not endpoint.startswith("http"):
                endpoint = "http://" + endpoint
            return Login(
                storage.Client(
                    project=self.project or "local",
                    credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": endpoint},
                )
            )
        options = {"api_endpoint": self.endpoint_url} if self.endpoint_url else None
        credentials = None
        project = self.project
        if self.key_file is not None:
            if info is None:
                try:
                    identity, info = _read(self.key_file)
                except (OSError, ValueError) as e:
                    raise PermissionDenied(
                        f"target {self.url}: cannot use the Google credentials file "
                        f"{self.key_file}: {getattr(e, 'strerror', None) or e}"
                    ) from e
            if info.get("type") == "service_account":
                credentials = self._service_account(info)
                project = project or info.get("project_id")
            elif self._explicit:
                raise PermissionDenied(
                    f"target {self.url}: credentials_file {self.key_file} is not a service "
                    f"account key (type {info.get('type')!r}); for other credentials set "
                    "GOOGLE_APPLICATION_CREDENTIALS instead"
                )
            # else: another kind of file named by GOOGLE_APPLICATION_CREDENTIALS, which
            # the library loads itself (below), as Application Default Credentials
        from google.auth.exceptions import DefaultCredentialsError

        try:
            client = storage.Client(
                project=project, credentials=credentials, client_options=options
            )
        except DefaultCredentialsError as e:
            raise PermissionDenied(
                f"target {self.url}: no Google credentials found. {_HOW}"
                if self.key_file is None
                else f"target {self.url}: cannot use {self.key_file}: {e}"
            ) from e
        except OSError as e:  # e.g. "Project was not passed and could not be determined"
            raise ConfigError(
                f"target {self.url}: {e} (set the target's project option or GOOGLE_CLOUD_PROJECT)"
            ) from e
        return Login(client, identity)

    def _service_account(self, info: dict[str, Any]) -> Any:
        from google.auth.exceptions import GoogleAuthError
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_info(info)
        except (GoogleAuthError, ValueError, KeyError) as e:
            raise PermissionDenied(
                f"target {self.url}: {self.key_file} is not a usable service account key: {e}"
            ) from e


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    """The key file's identity and its content (OSError, ValueError if unreadable)."""
    data = path.read_bytes()
    info = json.loads(data)
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    if info.get("type") == "service_account" and info.get("private_key_id"):
        # the key id names the key pair: a rotation always changes it, a rewrite of
        # the same key (reformatted, copied back) does not
        return f"key {info['private_key_id']} of {info.get('client_email')}", info
    return f"credentials file sha256 {hashlib.sha256(data).hexdigest()[:16]}", info
