# One key ring for the archive. The "storage" key encrypts the buckets and the
# function's image repository at rest (CMEK). Hosts' envelope keys are per
# tenant and live in the tenant module, because GCP KMS IAM cannot look at the
# request's additional authenticated data: the key itself is the tenant
# boundary. The "envelope" key here is the one the function unwraps GCS-primary
# tenants' data keys with (KMS_KEY_NAME: the function takes one GCP key, not
# one per tenant); only the function may decrypt with it.

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_kms_key_ring" "archive" {
  name       = "${var.name}-archive"
  project    = var.project_id
  location   = var.region
  depends_on = [google_project_service.archive]
}

resource "google_kms_crypto_key" "storage" {
  name            = "storage"
  key_ring        = google_kms_key_ring.archive.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.key_rotation_period
  labels          = var.labels
  # Losing this key loses every object encrypted under it.
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "gcs_uses_storage_key" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_kms_crypto_key_iam_member" "artifact_registry_uses_storage_key" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}

resource "google_kms_crypto_key" "envelope" {
  name            = "envelope"
  key_ring        = google_kms_key_ring.archive.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.key_rotation_period
  labels          = var.labels
  # Destroying it makes every data key it wrapped unreadable.
  lifecycle {
    prevent_destroy = true
  }
}

# The function's KMS_KEY_NAME: decrypt only. (The tenant module grants it
# roles/cloudkms.cryptoKeyDecrypter on each tenant's own key as well.)
resource "google_kms_crypto_key_iam_member" "function_unwraps_envelope" {
  crypto_key_id = google_kms_crypto_key.envelope.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.function.member
}
