"""Reading S3's answers: what an error's code means, and what a success carries.

The code and message of a botocore error (``error_code``, ``error_message``), the sets of
codes that mean "not found", "precondition failed", "access denied", "these
credentials were refused", "S3 rejected the bytes", and which failures are worth
asking again (``is_transient``: throttling, 5xx, timeouts, a connection that
never answered). From a successful answer: the version token an
``ObjectInfo`` carries (``version``) and the whole-object SHA-256, when S3 has
one (``full_sha256_hex``).

Only reading, no state and no SDK import: :meth:`S3Backend._error
<shipper.storage.s3.S3Backend._error>` is still the one place these become the
project's errors, because that also needs the backend (is the bucket there? were
the credentials rotated?). Apart from it so that the backend and its upload path
(``s3_upload.py``) read the same vocabulary.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
PRECONDITION = {"412", "PreconditionFailed", "ConditionalRequestConflict"}
DENIED = {
    "403",
    "AccessDenied",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
    "AllAccessDisabled",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
}
# the credentials themselves were refused (not the action): after a rotation, new
# credentials may be on disk already
BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "InvalidClientTokenId",
}
INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
# Asking again may succeed: throttling, server-side trouble, timeouts. (Any 5xx too.)
TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "429",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
# botocore's names for "the request never got an answer" (connection refused/reset, timeouts)
TRANSIENT_SDK = {
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionError",
    "ProxyConnectionError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "ProtocolError",
}


def is_transient(e: BaseException, code: str) -> bool:
    if code in TRANSIENT or (code.isdigit() and int(code) >= 500):
        return True
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
    return any(c.__name__ in TRANSIENT_SDK for c in type(e).__mro__)


def error_code(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code = str(err.get("Code", ""))
        if code:
            return code
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(status or "")
    return ""


def error_message(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Message"):
        return str(response["Error"]["Message"])
    return str(e)


def version(r: Mapping[str, Any]) -> str:
    """VersionId on a versioned bucket, else the ETag ("null" means unversioned)."""
    vid = r.get("VersionId")
    return str(vid if vid and vid != "null" else r.get("ETag", ""))


def full_sha256_hex(head: Mapping[str, Any]) -> str | None:
    """Hex SHA-256 of the whole object from a HEAD, or None when S3's value is a
    composite of part checksums (multipart: ChecksumType COMPOSITE, a "-N"
    suffix, or -- on services that omit both -- a multipart ETag)."""
    checksum = head.get("ChecksumSHA256")
    if not checksum or "-" in checksum or head.get("ChecksumType") == "COMPOSITE":
        return None
    if "-" in str(head.get("ETag", "")):
        return None
    return base64.b64decode(checksum).hex()
