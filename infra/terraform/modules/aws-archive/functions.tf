# The two Lambdas (handlers built by the serverless issue, packaged by
# `make functions`): each has its own role holding only what it calls.

locals {
  verify_name  = "${var.name}-verify-replicate"
  planner_name = "${var.name}-restore-planner"
  # The namespace every function metric (CloudWatch EMF) is published in.
  metrics_namespace = "BinlogShipper"
  # KMS_KEY_ID is the envelope key: AwsKmsProvider names it in every kms:Decrypt.
  common_env = {
    ARCHIVE_BUCKET               = aws_s3_bucket.archive.bucket
    CATALOG_TABLE                = aws_dynamodb_table.catalog.name
    KMS_KEY_ID                   = aws_kms_key.envelope.arn
    METRICS_NAMESPACE            = local.metrics_namespace
    POWERTOOLS_LOG_LEVEL         = "INFO"
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ------------------------------------------------------------ verify/replicate

resource "aws_iam_role" "verify" {
  name               = local.verify_name
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "verify" {
  statement {
    sid       = "ConsumeVerifyQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.verify.arn]
  }
  statement {
    # Read the object just written (and its index) to verify it end to end.
    sid       = "ReadArchive"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.archive.arn}/*/mysql/*"]
  }
  statement {
    # With ListBucket S3 answers HeadObject on a deleted object with 404, not
    # 403, so the event is logged as "gone" instead of dead-lettered.
    sid       = "ListArchive"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.archive.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["*/mysql/*"]
    }
  }
  statement {
    # A direct kms:Decrypt (no kms:ViaService): the function unwraps each
    # object's data key itself, for every tenant (a tenant in the context).
    sid       = "UnwrapEnvelopeKeys"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.envelope.arn]
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:tenant"
      values   = ["false"]
    }
  }
  statement {
    # SSE-KMS reads/writes through S3, the encrypted queue, and the catalog
    # table (encrypted with the archive key; the planner and the replicator
    # role have it via DynamoDB too).
    sid       = "ServiceKeyViaServices"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.archive.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "sqs.${local.region}.amazonaws.com", "dynamodb.${local.region}.amazonaws.com"]
    }
  }
  statement {
    sid       = "CatalogWrites"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.catalog.arn]
  }
  statement {
    # Its own environment variables, encrypted with the archive key (the
    # context Lambda uses names the function).
    sid       = "OwnEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.archive.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:LambdaFunctionName"
      values   = [local.verify_name]
    }
  }
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.verify.arn}:*"]
  }
  statement {
    # X-Ray has no resource-level permissions.
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "verify" {
  name   = "verify-replicate"
  role   = aws_iam_role.verify.id
  policy = data.aws_iam_policy_document.verify.json
}

resource "aws_cloudwatch_log_group" "verify" {
  name              = "/aws/lambda/${local.verify_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.archive.arn
  tags              = var.tags
}

resource "aws_lambda_function" "verify" {
  # checkov:skip=CKV_AWS_116:invoked synchronously by the SQS event source mapping; failed messages go to the source queue's dead-letter queue (aws_sqs_queue.verify_dlq)
  function_name                  = local.verify_name
  description                    = "Verify each new archive object (decrypt, hash, CRC), replicate it to GCS, catalog it"
  role                           = aws_iam_role.verify.arn
  handler                        = "functions/aws/verify_replicate.handler"
  runtime                        = var.lambda_runtime
  architectures                  = [var.lambda_architecture]
  filename                       = var.lambda_package_path
  source_code_hash               = filebase64sha256(var.lambda_package_path)
  timeout                        = var.verify_timeout_seconds
  memory_size                    = var.verify_memory_mb
  reserved_concurrent_executions = var.verify_reserved_concurrency
  kms_key_arn                    = aws_kms_key.archive.arn

  environment {
    variables = merge(local.common_env, {
      POWERTOOLS_SERVICE_NAME = "verify_replicate"
      REPLICA_GCS_BUCKET      = var.replica_gcs_bucket
      # Not a secret: a workload identity federation configuration. GCP trades
      # the function's signed AWS identity for a short-lived token.
      GCP_CREDENTIAL_CONFIG = var.gcp_credential_config_json
    })
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.verify.name
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.verify]
}

resource "aws_lambda_event_source_mapping" "verify" {
  event_source_arn                   = aws_sqs_queue.verify.arn
  function_name                      = aws_lambda_function.verify.arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = 5
  # One failed object does not send the nine good ones of its batch back.
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.verify_reserved_concurrency
  }
}

# ------------------------------------------------------------ restore planner

resource "aws_iam_role" "planner" {
  name               = local.planner_name
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "planner" {
  statement {
    # The planner reads the catalog (Query, never Scan) ...
    sid       = "CatalogReads"
    actions   = ["dynamodb:Query", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.catalog.arn, "${aws_dynamodb_table.catalog.arn}/index/by_first_event"]
  }
  statement {
    # ... and the archive's objects: the transaction indexes and backup
    # records it plans from, and the objects it names (a plan stats them
    # unless the catalog has a verified S3 copy). Read only.
    sid       = "ReadArchive"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.archive.arn}/*/mysql/*"]
  }
  statement {
    # A direct kms:Decrypt (no kms:ViaService), for every tenant.
    sid       = "UnwrapEnvelopeKeys"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.envelope.arn]
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:tenant"
      values   = ["false"]
    }
  }
  statement {
    sid       = "ServiceKeyViaServices"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.archive.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "dynamodb.${local.region}.amazonaws.com"]
    }
  }
  statement {
    # Its own environment variables, encrypted with the archive key (the
    # context Lambda uses names the function).
    sid       = "OwnEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.archive.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:LambdaFunctionName"
      values   = [local.planner_name]
    }
  }
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.planner.arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "planner" {
  name   = "restore-planner"
  role   = aws_iam_role.planner.id
  policy = data.aws_iam_policy_document.planner.json
}

resource "aws_cloudwatch_log_group" "planner" {
  name              = "/aws/lambda/${local.planner_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.archive.arn
  tags              = var.tags
}

resource "aws_lambda_function" "planner" {
  # checkov:skip=CKV_AWS_116:invoked synchronously by an operator (aws lambda invoke); the caller gets the error, there is no event to dead-letter
  function_name                  = local.planner_name
  description                    = "Plan a point-in-time restore from the catalog"
  role                           = aws_iam_role.planner.arn
  handler                        = "functions/aws/restore_planner.handler"
  runtime                        = var.lambda_runtime
  architectures                  = [var.lambda_architecture]
  filename                       = var.lambda_package_path
  source_code_hash               = filebase64sha256(var.lambda_package_path)
  timeout                        = 60
  memory_size                    = var.planner_memory_mb
  reserved_concurrent_executions = var.planner_reserved_concurrency
  kms_key_arn                    = aws_kms_key.archive.arn

  environment {
    variables = merge(local.common_env, {
      POWERTOOLS_SERVICE_NAME = "restore_planner"
    })
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.planner.name
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.planner]
}

# ------------------------------------------------ GCS-primary replication in
# The Cloud Function of the gcp-archive module copies GCS-primary objects here.
# It has no AWS keys: it presents a Google-signed ID token of its own service
# account, and this role trusts exactly that account and audience.

resource "aws_iam_role" "gcp_replicator" {
  count = var.gcp_function_service_account_id == "" ? 0 : 1
  name  = "${var.name}-gcp-replicator"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = "accounts.google.com" }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          # For a Google ID token AWS maps azp (the service account's unique
          # id) to :aud and the requested audience to :oaud.
          "accounts.google.com:aud"  = var.gcp_function_service_account_id
          "accounts.google.com:oaud" = var.gcp_function_audience
          "accounts.google.com:sub"  = var.gcp_function_service_account_id
        }
      }
    }]
  })
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "gcp_replicator" {
  statement {
    # Create-only: the copy is conditional (If-None-Match) and nothing it
    # writes can replace an archived object (Object Lock, no DeleteObject).
    sid       = "ReplicateIn"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.archive.arn}/*/mysql/*"]
  }
  statement {
    # It stats the copy it just made (and a key already taken): with
    # ListBucket a missing key is 404, not 403.
    sid       = "ListArchive"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.archive.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["*/mysql/*"]
    }
  }
  statement {
    # AWS_KMS_KEY_ID (dual-cloud tenants): the function unwraps the data key
    # itself, a direct kms:Decrypt (no kms:ViaService), any tenant's context.
    sid       = "UnwrapEnvelopeKeys"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.envelope.arn]
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:tenant"
      values   = ["false"]
    }
  }
  statement {
    sid       = "ServiceKeyViaS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.archive.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "dynamodb.${local.region}.amazonaws.com"]
    }
  }
  statement {
    sid       = "CatalogWrites"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.catalog.arn]
  }
}

resource "aws_iam_role_policy" "gcp_replicator" {
  count  = length(aws_iam_role.gcp_replicator)
  name   = "replicate-from-gcs"
  role   = aws_iam_role.gcp_replicator[0].id
  policy = data.aws_iam_policy_document.gcp_replicator.json
}
