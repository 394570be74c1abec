output "role_arn" {
  description = "Role the tenant's hosts assume (AWS_ROLE_ARN / a profile's role_arn on the host)."
  value       = aws_iam_role.host.arn
}

output "prefix" {
  description = "The tenant's key prefix in the bucket."
  value       = local.prefix
}

output "catalog_partition_pattern" {
  description = "dynamodb:LeadingKeys pattern of the tenant's catalog partitions."
  value       = local.partition_pattern
}

output "config_snippet" {
  description = "This tenant's /etc/binlog-shipper/config.toml without its [mysql] table: targets in routing order, one key per cloud."
  value = templatefile("${path.module}/../config.toml.tftpl", {
    tenant   = var.tenant
    primary  = var.primary
    targets  = var.primary == "aws" ? concat([local.s3_target], local.gcs_targets) : concat(local.gcs_targets, [local.s3_target])
    keys     = concat([{ provider = "aws-kms", key = var.envelope_key_arn, region = var.region }], local.gcp_keys)
    identity = "AWS role ${aws_iam_role.host.arn}"
  })
}
