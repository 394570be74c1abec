# One AWS account: the archive (bucket, keys, catalog, queue, Lambdas, alarms)
# and its two tenants. When you copy this repository, point the sources at a
# pinned release of binlog-shipper instead of the relative path, e.g.
#   source = "git::https://example.com/binlog-shipper.git//infra/terraform/modules/aws-archive?ref=v0.1.0"

locals {
  name = "binlog-prod"
}

module "archive" {
  source = "../../infra/terraform/modules/aws-archive"

  name                            = local.name
  bucket_name                     = var.bucket_name
  object_lock_mode                = "COMPLIANCE"
  object_lock_days                = var.object_lock_days
  glacier_ir_after_days           = 90
  lambda_package_path             = "${path.root}/../../dist/functions/aws-lambda.zip"
  replica_gcs_bucket              = var.gcs_bucket
  gcp_credential_config_json      = var.gcp_credential_config_json
  gcp_function_service_account_id = var.gcp_function_service_account_id
  alarm_emails                    = var.alarm_emails
}

module "tenant_shop" {
  source = "../../infra/terraform/modules/tenant/aws"

  tenant              = "shop"
  primary             = "aws"
  name                = local.name
  bucket_name         = module.archive.bucket_name
  bucket_arn          = module.archive.bucket_arn
  region              = module.archive.region
  envelope_key_arn    = module.archive.envelope_key_arn
  archive_key_arn     = module.archive.archive_key_arn
  catalog_table_arn   = module.archive.catalog_table_arn
  tenant_tag_key      = module.archive.tenant_tag_key
  host_principal_arns = var.shop_host_role_arns
  gcs_bucket          = var.gcs_bucket
  gcp_kms_key_name    = lookup(var.gcp_envelope_keys, "shop", "")
}

module "tenant_ledger" {
  source = "../../infra/terraform/modules/tenant/aws"

  tenant              = "ledger"
  primary             = "gcp"
  name                = local.name
  bucket_name         = module.archive.bucket_name
  bucket_arn          = module.archive.bucket_arn
  region              = module.archive.region
  envelope_key_arn    = module.archive.envelope_key_arn
  archive_key_arn     = module.archive.archive_key_arn
  catalog_table_arn   = module.archive.catalog_table_arn
  tenant_tag_key      = module.archive.tenant_tag_key
  host_principal_arns = var.ledger_host_role_arns
  gcs_bucket          = var.gcs_bucket
  gcp_kms_key_name    = lookup(var.gcp_envelope_keys, "ledger", "")
}
