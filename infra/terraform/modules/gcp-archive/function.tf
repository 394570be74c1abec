# The Cloud Function (2nd gen) that verifies every object finalized in the
# archive bucket, replicates GCS-primary objects to S3 and catalogs them.
# Three service accounts, each with only its own job:
#   fn       runs the function: reads the archive, decrypts envelope keys
#            (granted per tenant by the tenant module); it writes nothing
#            here: a failed object stays where it is, locked, as evidence,
#            and is reported (log-based metric, alert, catalog state)
#   trigger  Eventarc's identity: may only receive events and invoke the function
#   build    Cloud Build's identity for this function: reads the source,
#            pushes the image, writes build logs

resource "google_service_account" "function" {
  project      = var.project_id
  account_id   = "${var.name}-fn"
  display_name = "binlog-shipper verify/replicate function"
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${var.name}-trigger"
  display_name = "binlog-shipper Eventarc trigger"
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name}-build"
  display_name = "binlog-shipper function build"
}

# ---------------------------------------------------------------- function SA

resource "google_storage_bucket_iam_member" "function_reads_archive" {
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.function.member
}

# ---------------------------------------------------------------- trigger SA

resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger.member
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_function" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.verify_replicate.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

# Storage triggers publish through Pub/Sub as the GCS service agent.
resource "google_project_iam_member" "gcs_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# ---------------------------------------------------------------- build SA

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_image" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name}-functions"
  format        = "DOCKER"
  kms_key_name  = google_kms_crypto_key.storage.id
  labels        = var.labels
  depends_on    = [google_project_service.archive, google_kms_crypto_key_iam_member.artifact_registry_uses_storage_key]
}

# ---------------------------------------------------------------- the function

data "archive_file" "function_source" {
  type        = "zip"
  source_dir  = var.function_source_dir
  output_path = "${path.root}/.terraform/${var.name}-gcp-function.zip"
}

resource "google_storage_bucket_object" "function_source" {
  # Named by content, so a new build is a new object and the function redeploys.
  name   = "verify-replicate/${data.archive_file.function_source.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.function_source.output_path
}

locals {
  function_name = "${var.name}-verify-replicate"
  aws_env = merge(
    {
      REPLICA_S3_BUCKET    = var.replica_s3_bucket
      AWS_REGION           = var.aws_region
      CATALOG_TABLE        = var.aws_catalog_table
      AWS_CREDENTIALS_MODE = var.aws_credentials_mode
      METRICS_NAMESPACE    = "BinlogShipper"
      ARCHIVE_BUCKET       = google_storage_bucket.archive.name
      # GCP KMS keys the function unwraps GCS-primary tenants' data keys with: the
      # archive's own and every tenant module's envelope-TENANT key in this key ring
      # (the tenant module grants the function cryptoKeyDecrypter on it).
      KMS_KEY_NAME = join(",", concat(
        [google_kms_crypto_key.envelope.id],
        [for t in var.tenants : "${google_kms_key_ring.archive.id}/cryptoKeys/envelope-${t}"]
      ))
    },
    var.aws_kms_key_id != "" ? {
      # AWS KMS envelope key, for dual-cloud tenants (a direct kms:Decrypt
      # through the replicator role).
      AWS_KMS_KEY_ID = var.aws_kms_key_id
    } : {},
    var.aws_credentials_mode == "workload_identity" ? {
      # The function asks the metadata server for an ID token with this
      # audience and trades it for AWS credentials (AssumeRoleWithWebIdentity).
      AWS_ROLE_ARN              = var.aws_replicator_role_arn
      AWS_WEB_IDENTITY_AUDIENCE = var.aws_audience
    } : {}
  )
}

resource "google_cloudfunctions2_function" "verify_replicate" {
  project     = var.project_id
  location    = var.region
  name        = local.function_name
  description = "Verify each new archive object (decrypt, hash, CRC), replicate it to S3, catalog it"

  build_config {
    runtime           = var.function_runtime
    entry_point       = "verify_replicate"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    max_instance_count             = var.function_max_instances
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_seconds
    service_account_email          = google_service_account.function.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    environment_variables          = local.aws_env

    dynamic "secret_environment_variables" {
      for_each = var.aws_credentials_mode == "secret" ? [1] : []
      content {
        key        = "AWS_CREDENTIALS_JSON"
        project_id = var.project_id
        secret     = google_secret_manager_secret.aws_credentials[0].secret_id
        version    = "latest"
      }
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.archive.name
    }
  }

  labels = var.labels

  depends_on = [
    google_project_service.archive,
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.gcs_publishes_events,
    google_storage_bucket_iam_member.build_reads_source,
    google_artifact_registry_repository_iam_member.build_pushes_image,
    google_project_iam_member.build_writes_logs,
    google_kms_crypto_key_iam_member.function_unwraps_envelope,
  ]
}
