output "bucket_name" {
  description = "The archive bucket (the host's target is gs://BUCKET, no prefix: keys start with the tenant)."
  value       = google_storage_bucket.archive.name
}

output "bucket_metadata_reader_role" {
  description = "Custom role granting only storage.buckets.get (tenant module input)."
  value       = google_project_iam_custom_role.bucket_metadata_reader.name
}

output "key_ring_id" {
  description = "Key ring the tenant module creates each tenant's envelope key in."
  value       = google_kms_key_ring.archive.id
}

output "envelope_key_name" {
  description = "GCP KMS key the function unwraps GCS-primary tenants' data keys with (its KMS_KEY_NAME)."
  value       = google_kms_crypto_key.envelope.id
}

output "function_name" {
  description = "Name of the verify/replicate Cloud Function."
  value       = google_cloudfunctions2_function.verify_replicate.name
}

output "function_service_account_email" {
  description = "Service account the function runs as (the tenant module lets it decrypt each tenant's envelope keys)."
  value       = google_service_account.function.email
}

output "function_service_account_unique_id" {
  description = "Numeric unique id of the function's service account: the aws-archive module's gcp_function_service_account_id."
  value       = google_service_account.function.unique_id
}

output "aws_audience" {
  description = "Audience of the ID token the function presents to AWS: the aws-archive module's gcp_function_audience."
  value       = var.aws_audience
}

output "aws_credential_config_json" {
  description = "Workload identity federation configuration for the verify Lambda (aws-archive module's gcp_credential_config_json); empty without aws_account_id."
  value       = local.aws_credential_config
}

output "aws_credentials_secret_id" {
  description = "Secret Manager secret to fill with AWS access keys when aws_credentials_mode = \"secret\"; null otherwise."
  value       = try(google_secret_manager_secret.aws_credentials[0].id, null)
}
