# The archive bucket. GCS refuses Object Versioning on a bucket with a
# retention policy; the retention policy is the stronger control (no object can
# be deleted or replaced before it is retention_days old, by anyone), and soft
# delete keeps what is deleted after that restorable for soft_delete_days.

resource "google_storage_bucket" "archive" {
  # checkov:skip=CKV_GCP_78:GCS does not allow Object Versioning on a bucket with a retention policy; the retention policy (BLS_GCP_1) forbids replacing or deleting any object within it
  name                        = var.bucket_name
  project                     = var.project_id
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  retention_policy {
    retention_period = var.retention_days * 86400
    is_locked        = var.lock_retention_policy
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_days * 86400
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  logging {
    log_bucket        = google_storage_bucket.ops.name
    log_object_prefix = "usage/${var.bucket_name}"
  }

  lifecycle_rule {
    condition {
      age                   = var.nearline_after_days
      matches_storage_class = ["STANDARD"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.coldline_after_days
      matches_storage_class = ["STANDARD", "NEARLINE"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  # A killed shipper leaves an unfinished XML multipart upload behind.
  lifecycle_rule {
    condition {
      age = 2
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  labels     = var.labels
  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_storage_key]
}

# The operations bucket: usage and storage logs of the archive and source
# buckets, retention-locked like the archive.
resource "google_storage_bucket" "ops" {
  # checkov:skip=CKV_GCP_62:this bucket receives the archive bucket's usage logs; logging it into itself would loop
  # checkov:skip=CKV_GCP_78:GCS does not allow Object Versioning on a bucket with a retention policy; logs and sources are retention-locked instead
  name                        = "${var.bucket_name}-ops"
  project                     = var.project_id
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  retention_policy {
    retention_period = var.access_log_retention_days * 86400
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  lifecycle_rule {
    condition {
      age = var.access_log_retention_days + 1
    }
    action {
      type = "Delete"
    }
  }

  labels     = var.labels
  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_storage_key]
}

# GCS delivers usage logs as this group.
resource "google_storage_bucket_iam_member" "usage_logs_writer" {
  bucket = google_storage_bucket.ops.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

# The function's source archives. Terraform replaces the object on every
# deploy, and a retention policy would refuse to delete the previous one; they
# are rebuilt from the repository and hold no archive data.
resource "google_storage_bucket" "source" {
  # checkov:skip=BLS_GCP_1:function sources are replaced on every deploy and rebuilt from the repository; a retention policy would make the replacement fail
  name                        = "${var.bucket_name}-src"
  project                     = var.project_id
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  logging {
    log_bucket        = google_storage_bucket.ops.name
    log_object_prefix = "usage/${var.bucket_name}-src"
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  labels     = var.labels
  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_storage_key]
}

# `run --dry-run` reads the bucket (reachable, retention policy). No
# predefined role grants storage.buckets.get without storage.objects.list,
# which would show every tenant's object names; this one grants only that.
resource "google_project_iam_custom_role" "bucket_metadata_reader" {
  project     = var.project_id
  role_id     = replace("${var.name}_bucket_metadata_reader", "-", "_")
  title       = "binlog-shipper bucket metadata reader"
  description = "storage.buckets.get only: the shipper's dry-run reads the archive bucket's settings"
  permissions = ["storage.buckets.get"]
}
