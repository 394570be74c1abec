"""What google-cloud-storage's and google-auth's errors mean, as the project's errors.

:func:`classify` is the one place they become ``ObjectNotFound``,
``PreconditionFailed``, ``PermissionDenied``, ``IntegrityError`` or a
``StorageError`` marked transient or permanent (``shipper/storage/retry.py``
retries only the transient ones). It needs two things only the backend knows,
so :meth:`GCSBackend._error <shipper.storage.gcs.GCSBackend._error>` passes
them in: whether the bucket is there (asked only for a 404 on a read, stat or
delete), and the target's credentials (``Logins``), to tell a refused key that
has since been replaced (worth retrying) from one that has not.

Only reading, no state and no SDK import: the status and message of an error
(``http_status``, ``error_message``) are read from the attributes
google.api_core, google-resumable-media and google-auth errors carry.
"""

from __future__ import annotations

from collections.abc import Callable

from shipper.errors import (
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    ShipperError,
    StorageError,
)
from shipper.storage.gcs_auth import Login, Logins

# requests / urllib3 / google-auth names for "the request never got an answer"
TRANSIENT_SDK = {
    "ConnectionError",
    "Timeout",
    "ReadTimeout",
    "ConnectTimeout",
    "ChunkedEncodingError",
    "ProtocolError",
    "TransportError",
    "ServiceUnavailable",
    "InternalServerError",
    "TooManyRequests",
    "GatewayTimeout",
    "BadGateway",
}


def classify(
    e: BaseException,
    *,
    where: str,
    action: str,
    bucket: str,
    bucket_exists: Callable[[], bool],
    logins: Logins,
    login: Login | None = None,
) -> Exception:
    """The project's error for ``e``, raised by ``action`` on ``where`` (the object's URL).

    ``login`` is the client the failed call used (default: the current one): a
    refusal of its credentials is worth retrying when newer ones are in place now
    (a rotated key file).
    """
    status = http_status(e)
    if isinstance(e, ShipperError):
        return e
    if status == 404:
        if action in ("write", "list") or not bucket_exists():
            return ObjectNotFound(f"bucket {bucket} does not exist")
        return ObjectNotFound(f"{where} does not exist")
    if status == 412:
        return PreconditionFailed(f"{where} already exists")
    # The token endpoint refused the key (RefreshError: invalid_grant, a deleted or
    # disabled key; retryable=True is the endpoint being unwell, not a refusal), or
    # the endpoint answered 401 to anonymous credentials, which google-auth cannot
    # refresh (InvalidOperation). Either way: these credentials were refused.
    refused = type(e).__name__ in ("RefreshError", "InvalidOperation") and not getattr(
        e, "retryable", False
    )
    if status in (401, 403) or refused:
        used = login or logins.current
        what = status or type(e).__name__
        if logins.rotated(used):
            return StorageError(
                f"{action} {where}: {what}: the credentials were replaced; retrying with "
                "the new ones",
                transient=True,
            )
        if status == 403:
            return PermissionDenied(
                f"{action} {where}: {status}: {error_message(e)} "
                "(check the credentials and the bucket IAM policy)"
            )
        return PermissionDenied(
            f"{action} {where}: the credentials were refused: {what}: {error_message(e)} "
            f"({logins.explain(used)})"
        )
    if type(e).__name__ == "DataCorruption":
        return IntegrityError(f"{action} {where}: checksum mismatch: {e}")
    if type(e).__name__ == "DefaultCredentialsError":
        return PermissionDenied(f"{action} {where}: no usable Google credentials ({e})")
    transient = (
        (status is not None and (status >= 500 or status in (408, 429)))
        or any(c.__name__ in TRANSIENT_SDK for c in type(e).__mro__)
        or getattr(e, "retryable", False) is True  # google-auth: the endpoint may recover
    )
    return StorageError(
        f"{action} {where} failed: {status or type(e).__name__}: {error_message(e)}",
        transient=transient,
    )


def http_status(e: BaseException) -> int | None:
    """HTTP status from a google.api_core error or a resumable-media InvalidResponse."""
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return code
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def error_message(e: BaseException) -> str:
    msg = getattr(e, "message", None)
    if msg is None and e.args and isinstance(e.args[0], str):
        msg = e.args[0]  # google-auth: (message, response data)
    return str(msg or e).splitlines()[0]
