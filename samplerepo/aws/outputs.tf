output "s3_bucket" {
  description = "The S3 archive bucket (gcp root input s3_bucket)."
  value       = module.archive.bucket_name
}

output "region" {
  description = "Region of the archive (gcp root input aws_region)."
  value       = module.archive.region
}

output "envelope_key_arn" {
  description = "AWS envelope key (gcp root input aws_envelope_key_arn)."
  value       = module.archive.envelope_key_arn
}

output "catalog_table" {
  description = "DynamoDB catalog (gcp root input aws_catalog_table)."
  value       = module.archive.catalog_table_name
}

output "verify_role_name" {
  description = "Role name of the verify Lambda (gcp root input aws_verify_role_name)."
  value       = split("/", module.archive.verify_role_arn)[1]
}

output "gcp_replicator_role_arn" {
  description = "Role the Cloud Function assumes (gcp root input aws_replicator_role_arn)."
  value       = module.archive.gcp_replicator_role_arn
}

output "tenant_role_arns" {
  description = "Role each tenant's hosts assume."
  value = {
    shop   = module.tenant_shop.role_arn
    ledger = module.tenant_ledger.role_arn
  }
}

output "config_snippets" {
  description = "Ready /etc/binlog-shipper/TENANT.toml per tenant (add the host's [mysql] table)."
  value = {
    shop   = module.tenant_shop.config_snippet
    ledger = module.tenant_ledger.config_snippet
  }
}
