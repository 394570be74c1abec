# Two keys, because they answer to different principals:
# * envelope: wraps the per-object data keys of the shipper's envelope. Only a
#   principal tagged with a tenant may use it, and only under an encryption
#   context whose tenant is that tag, so one tenant's host can never unwrap
#   another tenant's data key even if it got hold of the object.
# * archive: encrypts the services at rest (S3 SSE-KMS, SQS, DynamoDB, SNS,
#   CloudWatch Logs, Lambda environment). Services call it on a caller's behalf,
#   with their own encryption context, so it cannot carry the tenant binding.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  root_arn   = "arn:${local.partition}:iam::${local.account_id}:root"
  # The tag the tenant module puts on each host role; the envelope key policy
  # compares it with the request's encryption context.
  tenant_tag = "binlog-shipper-tenant"
}

resource "aws_kms_key" "envelope" {
  description             = "${var.name}: wraps binlog-shipper envelope data keys (encryption context binds the tenant)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Without this statement the key becomes unmanageable; IAM policies in
        # the account still decide who administers it.
        Sid       = "AccountAdministersKey"
        Effect    = "Allow"
        Principal = { AWS = local.root_arn }
        Action = [
          "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
          "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
          "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
          "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
        ]
        Resource = "*"
      },
      {
        # A tenant's host role (tagged by the tenant module) wraps and unwraps
        # only under its own tenant's context. The tenant role's IAM policy
        # repeats the condition with the literal tenant: both must allow.
        Sid       = "TenantHostsUseOwnContext"
        Effect    = "Allow"
        Principal = { AWS = local.root_arn }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:EncryptionContext:tenant" = "$${aws:PrincipalTag/${local.tenant_tag}}"
          }
          Null = { "aws:PrincipalTag/${local.tenant_tag}" = "false" }
        }
      },
      {
        # `run --dry-run` wraps a throwaway key under exactly this context to
        # prove the key works; it can never open a real data key.
        Sid       = "TenantHostsPreflight"
        Effect    = "Allow"
        Principal = { AWS = local.root_arn }
        Action    = ["kms:Encrypt", "kms:Decrypt"]
        Resource  = "*"
        Condition = {
          StringEquals                = { "kms:EncryptionContext:purpose" = "binlog-shipper-preflight" }
          "ForAllValues:StringEquals" = { "kms:EncryptionContextKeys" = ["purpose"] }
          Null                        = { "aws:PrincipalTag/${local.tenant_tag}" = "false" }
        }
      },
      {
        # The functions verify every tenant's objects: decrypt only, and only
        # with a tenant in the context (an object outside the layout fails).
        # The Cloud Function of gcp-archive too, through its replicator role
        # (AWS_KMS_KEY_ID, dual-cloud tenants).
        Sid       = "FunctionsVerifyAnyTenant"
        Effect    = "Allow"
        Principal = { AWS = concat([aws_iam_role.verify.arn, aws_iam_role.planner.arn], aws_iam_role.gcp_replicator[*].arn) }
        Action    = "kms:Decrypt"
        Resource  = "*"
        Condition = { Null = { "kms:EncryptionContext:tenant" = "false" } }
      },
    ]
  })
  tags = var.tags
}

resource "aws_kms_alias" "envelope" {
  name          = "alias/${var.name}-envelope"
  target_key_id = aws_kms_key.envelope.key_id
}

resource "aws_kms_key" "archive" {
  description             = "${var.name}: encrypts the archive's services at rest (S3, SQS, DynamoDB, SNS, logs)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKey"
        Effect    = "Allow"
        Principal = { AWS = local.root_arn }
        Action = [
          "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
          "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
          "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
          "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
        ]
        Resource = "*"
      },
      {
        # Principals of this account use the key only through these services
        # (their IAM policies must allow it too): S3 for SSE-KMS objects, SQS,
        # DynamoDB, Lambda (environment variables).
        Sid       = "AccountUsesKeyViaServices"
        Effect    = "Allow"
        Principal = { AWS = local.root_arn }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:CallerAccount" = local.account_id
            "kms:ViaService" = [
              "s3.${local.region}.amazonaws.com",
              "sqs.${local.region}.amazonaws.com",
              "dynamodb.${local.region}.amazonaws.com",
              "lambda.${local.region}.amazonaws.com",
            ]
          }
        }
      },
      {
        # S3 event notifications to the encrypted queue, and CloudWatch alarms
        # to the encrypted topic: the services themselves encrypt the message.
        Sid       = "ServicesPublishEncrypted"
        Effect    = "Allow"
        Principal = { Service = ["s3.amazonaws.com", "cloudwatch.amazonaws.com"] }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        # CloudWatch Logs encrypts the function log groups of this account only.
        Sid       = "LogsEncryptOwnLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}-*"
          }
        }
      },
    ]
  })
  tags = var.tags
}

resource "aws_kms_alias" "archive" {
  name          = "alias/${var.name}-archive"
  target_key_id = aws_kms_key.archive.key_id
}
