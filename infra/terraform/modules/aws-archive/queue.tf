# S3 ObjectCreated -> SQS -> verify Lambda. The queue decouples bursts (a
# fleet catching up after an outage) from the function's reserved concurrency,
# and its dead-letter queue keeps every event the function could not handle.

resource "aws_sqs_queue" "verify_dlq" {
  name                              = "${var.name}-verify-dlq"
  message_retention_seconds         = 1209600 # 14 days, the SQS maximum
  kms_master_key_id                 = aws_kms_key.archive.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_sqs_queue" "verify" {
  name = "${var.name}-verify"
  # AWS advises six times the function timeout for an SQS event source, so a
  # message is not redelivered while a slow invocation still holds it.
  visibility_timeout_seconds        = 6 * var.verify_timeout_seconds
  message_retention_seconds         = 345600 # 4 days
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = aws_kms_key.archive.arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.verify_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "verify_dlq" {
  queue_url = aws_sqs_queue.verify_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.verify.arn]
  })
}

resource "aws_sqs_queue_policy" "verify" {
  queue_url = aws_sqs_queue.verify.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ArchiveBucketNotifies"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.verify.arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = aws_s3_bucket.archive.arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.verify.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
