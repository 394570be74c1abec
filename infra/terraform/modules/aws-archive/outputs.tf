output "bucket_name" {
  description = "The archive bucket (the host's target is s3://BUCKET, no prefix: keys start with the tenant)."
  value       = aws_s3_bucket.archive.bucket
}

output "bucket_arn" {
  description = "ARN of the archive bucket (tenant module input)."
  value       = aws_s3_bucket.archive.arn
}

output "region" {
  description = "Region of the archive."
  value       = local.region
}

output "envelope_key_arn" {
  description = "KMS key that wraps envelope data keys (the host's aws-kms key_id; tenant module input)."
  value       = aws_kms_key.envelope.arn
}

output "archive_key_arn" {
  description = "KMS key of the services at rest (S3 SSE-KMS; tenant module input)."
  value       = aws_kms_key.archive.arn
}

output "catalog_table_name" {
  description = "DynamoDB catalog table."
  value       = aws_dynamodb_table.catalog.name
}

output "catalog_table_arn" {
  description = "ARN of the DynamoDB catalog table (tenant module input)."
  value       = aws_dynamodb_table.catalog.arn
}

output "tenant_tag_key" {
  description = "IAM tag key the envelope key policy compares with the encryption context's tenant (tenant module input)."
  value       = local.tenant_tag
}

output "verify_function_name" {
  description = "Name of the verify/replicate Lambda."
  value       = aws_lambda_function.verify.function_name
}

output "verify_role_arn" {
  description = "Role of the verify/replicate Lambda (the gcp-archive module lets it impersonate the GCS replicator)."
  value       = aws_iam_role.verify.arn
}

output "planner_function_name" {
  description = "Name of the restore-planner Lambda."
  value       = aws_lambda_function.planner.function_name
}

output "gcp_replicator_role_arn" {
  description = "Role the Cloud Function assumes with its Google ID token (gcp-archive module input); null until gcp_function_service_account_id is set."
  value       = try(aws_iam_role.gcp_replicator[0].arn, null)
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "verify_queue_url" {
  description = "URL of the verify queue (S3 events)."
  value       = aws_sqs_queue.verify.id
}

output "verify_dlq_url" {
  description = "URL of the verify dead-letter queue."
  value       = aws_sqs_queue.verify_dlq.id
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the functions' EMF metrics."
  value       = local.metrics_namespace
}
