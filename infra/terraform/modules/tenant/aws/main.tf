# The IAM role a tenant's host shipper assumes. Everything it may do is under
# its own prefix, context or partition; nothing lets it delete or overwrite an
# archived object (Object Lock, If-None-Match uploads, no DeleteObject).

locals {
  prefix    = "${var.tenant}/"
  role_name = "${var.name}-tenant-${var.tenant}"
  # dynamodb:LeadingKeys: every partition key this role touches is one of its
  # own servers' partitions (T#{tenant}#S#{server_id}) or its tenant's server
  # registry (T#{tenant}, written once per server; docs/catalog.md).
  partition_pattern = "T#${var.tenant}#S#*"
  registry_pk       = "T#${var.tenant}"

  s3_target   = { url = "s3://${var.bucket_name}", region = var.region }
  gcs_targets = var.gcs_bucket == "" ? [] : [{ url = "gs://${var.gcs_bucket}", region = "" }]
  gcp_keys    = var.gcp_kms_key_name == "" ? [] : [{ provider = "gcp-kms", key = var.gcp_kms_key_name, region = "" }]
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.host_principal_arns
    }
  }
}

resource "aws_iam_role" "host" {
  name                 = local.role_name
  description          = "binlog-shipper host role of tenant ${var.tenant}"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  # The envelope key policy reads this tag: KMS allows the role only the
  # encryption context whose tenant equals it.
  tags = merge(var.tags, { (var.tenant_tag_key) = var.tenant })
}

data "aws_iam_policy_document" "host" {
  statement {
    sid       = "ObjectsUnderOwnPrefix"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${var.bucket_arn}/${local.prefix}*"]
  }
  statement {
    # The S3 backend aborts its own multipart upload when one fails, so no
    # parts linger until the lifecycle rule runs.
    sid       = "AbortOwnMultipartUploads"
    actions   = ["s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arn}/${local.prefix}*"]
  }
  statement {
    # Listing is allowed only with a prefix inside the tenant's own.
    sid       = "ListOwnPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.prefix, "${local.prefix}*"]
    }
  }
  statement {
    # `run --dry-run` reports the bucket's versioning and Object Lock state.
    sid       = "ReadBucketProtection"
    actions   = ["s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"]
    resources = [var.bucket_arn]
  }
  statement {
    # Wrap and unwrap envelope data keys only under this tenant's context
    # (the key policy repeats this against the role's tenant tag).
    sid       = "EnvelopeKeysOfOwnTenant"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.envelope_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:tenant"
      values   = [var.tenant]
    }
  }
  statement {
    # `run --dry-run` proves the key works by wrapping a throwaway key under
    # exactly {"purpose": "binlog-shipper-preflight"}. A context with only
    # that key can never open a real data key (those carry tenant, server,
    # binlog, and KMS matches contexts exactly).
    sid       = "EnvelopeKeyPreflight"
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = [var.envelope_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:purpose"
      values   = ["binlog-shipper-preflight"]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "kms:EncryptionContextKeys"
      values   = ["purpose"]
    }
  }
  statement {
    # SSE-KMS: S3 calls the service key on the role's behalf, for this bucket
    # only (with a bucket key the context is the bucket ARN).
    sid       = "BucketEncryptionViaS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.archive_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [var.bucket_arn]
    }
  }
  statement {
    sid       = "CatalogOwnPartitions"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [var.catalog_table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.partition_pattern, local.registry_pk]
    }
  }
}

resource "aws_iam_role_policy" "host" {
  name   = "binlog-shipper-tenant"
  role   = aws_iam_role.host.id
  policy = data.aws_iam_policy_document.host.json
}
