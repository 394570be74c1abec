"""The Cloud Function's GCP keys: one per tenant.

Each tenant/gcp module makes its own ``envelope-TENANT`` key, and the
gcp-archive module lists them (with its own) in ``KMS_KEY_NAME``, so the
function must be able to unwrap with whichever of them an envelope names.
"""

from __future__ import annotations

from functions.gcp.main import gcp_key_names

RING = "projects/p/locations/europe-west1/keyRings/archive"


def test_kms_key_name_lists_every_tenant_key() -> None:
    env = {
        "KMS_KEY_NAME": f"{RING}/cryptoKeys/envelope, {RING}/cryptoKeys/envelope-shop,"
        f"{RING}/cryptoKeys/envelope-ledger,"
    }
    assert gcp_key_names(env) == [
        f"{RING}/cryptoKeys/{n}" for n in ("envelope", "envelope-shop", "envelope-ledger")
    ]
    assert gcp_key_names({"KMS_KEY_NAME": f"{RING}/cryptoKeys/envelope"}) == [
        f"{RING}/cryptoKeys/envelope"
    ]
    assert gcp_key_names({}) == []
