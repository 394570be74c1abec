output "gcs_bucket" {
  description = "The GCS archive bucket (aws root input gcs_bucket)."
  value       = module.archive.bucket_name
}

output "envelope_keys" {
  description = "Each tenant's GCP envelope key (aws root input gcp_envelope_keys)."
  value = {
    shop   = module.tenant_shop.envelope_key_name
    ledger = module.tenant_ledger.envelope_key_name
  }
}

output "function_service_account_unique_id" {
  description = "aws root input gcp_function_service_account_id."
  value       = module.archive.function_service_account_unique_id
}

output "aws_credential_config_json" {
  description = "aws root input gcp_credential_config_json."
  value       = module.archive.aws_credential_config_json
}

output "tenant_service_accounts" {
  description = "Service account each tenant's hosts act as."
  value = {
    shop   = module.tenant_shop.service_account_email
    ledger = module.tenant_ledger.service_account_email
  }
}

output "config_snippets" {
  description = "Ready /etc/binlog-shipper/TENANT.toml per tenant, from the GCP side (add the host's [mysql] table)."
  value = {
    shop   = module.tenant_shop.config_snippet
    ledger = module.tenant_ledger.config_snippet
  }
}
