# One GCP project: the archive (bucket, keys, function, alerts) and its two
# tenants. When you copy this repository, point the sources at a pinned
# release of binlog-shipper instead of the relative path.

locals {
  name = "binlog-prod"
}

module "archive" {
  source = "../../infra/terraform/modules/gcp-archive"

  project_id              = var.project_id
  name                    = local.name
  region                  = var.region
  bucket_name             = var.bucket_name
  retention_days          = var.retention_days
  lock_retention_policy   = var.lock_retention_policy
  function_source_dir     = "${path.root}/../../dist/functions/gcp"
  replica_s3_bucket       = var.s3_bucket
  aws_region              = var.aws_region
  aws_catalog_table       = var.aws_catalog_table
  aws_kms_key_id          = var.aws_envelope_key_arn
  tenants                 = ["shop", "ledger"]
  aws_credentials_mode    = "workload_identity"
  aws_replicator_role_arn = var.aws_replicator_role_arn
  aws_account_id          = var.aws_account_id
  aws_verify_role_name    = var.aws_verify_role_name
  alert_emails            = var.alert_emails
}

module "tenant_shop" {
  source = "../../infra/terraform/modules/tenant/gcp"

  tenant                         = "shop"
  primary                        = "aws"
  project_id                     = var.project_id
  bucket_name                    = module.archive.bucket_name
  key_ring_id                    = module.archive.key_ring_id
  bucket_metadata_reader_role    = module.archive.bucket_metadata_reader_role
  function_service_account_email = module.archive.function_service_account_email
  host_members                   = var.shop_host_members
  s3_bucket                      = var.s3_bucket
  aws_region                     = var.aws_region
  aws_kms_key_arn                = var.aws_envelope_key_arn
}

module "tenant_ledger" {
  source = "../../infra/terraform/modules/tenant/gcp"

  tenant                         = "ledger"
  primary                        = "gcp"
  project_id                     = var.project_id
  bucket_name                    = module.archive.bucket_name
  key_ring_id                    = module.archive.key_ring_id
  bucket_metadata_reader_role    = module.archive.bucket_metadata_reader_role
  function_service_account_email = module.archive.function_service_account_email
  host_members                   = var.ledger_host_members
  s3_bucket                      = var.s3_bucket
  aws_region                     = var.aws_region
  aws_kms_key_arn                = var.aws_envelope_key_arn
}
