output "service_account_email" {
  description = "Service account the tenant's hosts act as."
  value       = google_service_account.host.email
}

output "prefix" {
  description = "The tenant's key prefix in the bucket."
  value       = local.prefix
}

output "envelope_key_name" {
  description = "The tenant's GCP envelope key (the host's gcp-kms key_name)."
  value       = google_kms_crypto_key.envelope.id
}

output "config_snippet" {
  description = "This tenant's /etc/binlog-shipper/config.toml without its [mysql] table: targets in routing order, one key per cloud."
  value = templatefile("${path.module}/../config.toml.tftpl", {
    tenant   = var.tenant
    primary  = var.primary
    targets  = var.primary == "gcp" ? concat([local.gcs_target], local.s3_targets) : concat(local.s3_targets, [local.gcs_target])
    keys     = concat(local.aws_keys, [{ provider = "gcp-kms", key = google_kms_crypto_key.envelope.id, region = "" }])
    identity = "GCP service account ${google_service_account.host.email}"
  })
}
