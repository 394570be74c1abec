# The service account a tenant's host shipper acts as, with IAM conditions on
# its object prefix, and the tenant's own envelope key. GCP KMS IAM cannot see
# the additional authenticated data (the encryption context), so the tenant
# boundary for keys is the key itself: one crypto key per tenant.

locals {
  prefix        = "${var.tenant}/"
  object_prefix = "projects/_/buckets/${var.bucket_name}/objects/${local.prefix}"

  gcs_target = { url = "gs://${var.bucket_name}", region = "" }
  s3_targets = var.s3_bucket == "" ? [] : [{ url = "s3://${var.s3_bucket}", region = var.aws_region }]
  aws_keys   = var.aws_kms_key_arn == "" ? [] : [{ provider = "aws-kms", key = var.aws_kms_key_arn, region = var.aws_region }]
}

resource "google_service_account" "host" {
  project      = var.project_id
  account_id   = "binlog-${var.tenant}"
  display_name = "binlog-shipper host of tenant ${var.tenant}"
}

resource "google_service_account_iam_member" "host_token_creator" {
  for_each           = toset(var.host_members)
  service_account_id = google_service_account.host.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}

resource "google_service_account_iam_member" "host_workload_identity" {
  for_each           = toset(var.host_members)
  service_account_id = google_service_account.host.name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}

# Create and read, only under the tenant's prefix. objectCreator has no
# delete, so no overwrite either: uploads are conditional on generation 0.
resource "google_storage_bucket_iam_member" "create_own_prefix" {
  bucket = var.bucket_name
  role   = "roles/storage.objectCreator"
  member = google_service_account.host.member
  condition {
    title       = "tenant-${var.tenant}-prefix"
    description = "Objects under ${local.prefix} only"
    expression  = "resource.name.startsWith(\"${local.object_prefix}\")"
  }
}

resource "google_storage_bucket_iam_member" "read_own_prefix" {
  bucket = var.bucket_name
  role   = "roles/storage.legacyObjectReader"
  member = google_service_account.host.member
  condition {
    title       = "tenant-${var.tenant}-prefix"
    description = "Objects under ${local.prefix} only"
    expression  = "resource.name.startsWith(\"${local.object_prefix}\")"
  }
}

resource "google_storage_bucket_iam_member" "read_bucket_metadata" {
  bucket = var.bucket_name
  role   = var.bucket_metadata_reader_role
  member = google_service_account.host.member
}

# storage.objects.list is checked on the bucket, where a prefix condition
# cannot match; a managed folder over the prefix grants listing inside it
# and nowhere else.
resource "google_storage_managed_folder" "tenant" {
  bucket = var.bucket_name
  name   = local.prefix
}

resource "google_storage_managed_folder_iam_member" "list_own_prefix" {
  bucket         = var.bucket_name
  managed_folder = google_storage_managed_folder.tenant.name
  role           = "roles/storage.objectViewer"
  member         = google_service_account.host.member
}

resource "google_kms_crypto_key" "envelope" {
  name            = "envelope-${var.tenant}"
  key_ring        = var.key_ring_id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.key_rotation_period
  labels          = { tenant = var.tenant }
  # Destroying it makes every data key it wrapped unreadable.
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "host_wraps" {
  crypto_key_id = google_kms_crypto_key.envelope.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = google_service_account.host.member
}

resource "google_kms_crypto_key_iam_member" "function_unwraps" {
  crypto_key_id = google_kms_crypto_key.envelope.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = "serviceAccount:${var.function_service_account_email}"
}
