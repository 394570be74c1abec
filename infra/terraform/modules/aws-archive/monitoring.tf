# Alarms to one SNS topic, and one dashboard. Function metrics are CloudWatch
# EMF in namespace "BinlogShipper" with dimensions tenant and server; the
# alarms use Metrics Insights queries so they cover every tenant and server
# without one alarm per dimension value. Host metrics (Prometheus, scraped by
# the CloudWatch agent) are in var.host_metrics_namespace.

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.archive.arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AlarmsOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
  # Metrics Insights: one series summed over every tenant and server.
  insights = {
    integrity_failures = {
      query       = "SELECT SUM(integrity_failed) FROM SCHEMA(\"${local.metrics_namespace}\", server, tenant)"
      description = "An archived object failed verification (decrypt, hash or CRC): it is quarantined; find it in the verify function's logs."
    }
    lineage_conflicts = {
      query       = "SELECT SUM(lineage_conflicts) FROM SCHEMA(\"${local.metrics_namespace}\", server, tenant)"
      description = "A different binlog claimed an archived name (RESET MASTER, rebuilt server): see `binlog-shipper status` on the host."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "insights" {
  for_each            = local.insights
  alarm_name          = "${var.name}-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  metric_query {
    id          = "q"
    expression  = each.value.query
    period      = 300
    return_data = true
  }
  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "archive_lag" {
  alarm_name          = "${var.name}-archive-lag"
  alarm_description   = "A host has a closed binlog not archived for more than ${var.archive_lag_alarm_seconds}s (binlog_archive_lag_seconds): check its shipper and its target's circuit state."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.archive_lag_alarm_seconds
  evaluation_periods  = 3
  # A host that stops reporting is itself an incident.
  treat_missing_data = "breaching"
  alarm_actions      = local.alarm_actions
  ok_actions         = local.alarm_actions
  metric_query {
    id          = "q"
    expression  = "SELECT MAX(binlog_archive_lag_seconds) FROM \"${var.host_metrics_namespace}\""
    period      = 300
    return_data = true
  }
  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "replication_failures" {
  alarm_name          = "${var.name}-replication-failures"
  alarm_description   = "The verify/replicate Lambda failed invocations: objects are not verified or not copied to GCS; they retry, then land in the dead-letter queue."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.verify.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  alarm_name          = "${var.name}-verify-dlq-depth"
  alarm_description   = "S3 events gave up after ${var.max_receive_count} deliveries: redrive ${aws_sqs_queue.verify_dlq.name} once the cause is fixed."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.verify_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_depth" {
  alarm_name          = "${var.name}-verify-queue-depth"
  alarm_description   = "More than ${var.queue_depth_alarm} S3 events wait for verification: the verify Lambda is failing or its concurrency is too low."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.verify.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.queue_depth_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_dashboard" "archive" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Functions: objects verified / replicated"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            [{ expression = "SELECT SUM(verified) FROM SCHEMA(\"${local.metrics_namespace}\", server, tenant)", label = "verified", id = "v" }],
            [{ expression = "SELECT SUM(replicated) FROM SCHEMA(\"${local.metrics_namespace}\", server, tenant)", label = "replicated", id = "r" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Functions: integrity failures / lineage conflicts"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            [{ expression = local.insights.integrity_failures.query, label = "integrity_failed", id = "i" }],
            [{ expression = local.insights.lineage_conflicts.query, label = "lineage_conflicts", id = "l" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Functions: bytes and seconds per tenant"
          region = local.region
          period = 300
          metrics = [
            [{ expression = "SELECT SUM(bytes) FROM SCHEMA(\"${local.metrics_namespace}\", server, tenant) GROUP BY tenant", label = "bytes", id = "b" }],
            [{ expression = "SELECT AVG(seconds) FROM SCHEMA(\"${local.metrics_namespace}\", server, tenant) GROUP BY tenant", label = "seconds", id = "s" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Verify queue and dead-letter queue"
          region = local.region
          stat   = "Maximum"
          period = 300
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.verify.name],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.verify.name],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.verify_dlq.name],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Lambdas: invocations, errors, throttles, duration"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.verify.function_name],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.verify.function_name],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.verify.function_name],
            ["AWS/Lambda", "Duration", "FunctionName", aws_lambda_function.verify.function_name, { stat = "p99" }],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.planner.function_name],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Hosts: archive lag, queue depth, sync failures"
          region = local.region
          period = 300
          metrics = [
            [{ expression = "SELECT MAX(binlog_archive_lag_seconds) FROM \"${var.host_metrics_namespace}\"", label = "binlog_archive_lag_seconds (max)", id = "lag" }],
            [{ expression = "SELECT MAX(binlog_queue_depth) FROM \"${var.host_metrics_namespace}\"", label = "binlog_queue_depth (max)", id = "qd" }],
            [{ expression = "SELECT SUM(binlog_sync_failed_total) FROM \"${var.host_metrics_namespace}\"", label = "binlog_sync_failed_total", id = "sf" }],
            [{ expression = "SELECT MIN(binlog_oldest_unarchived_expiry_seconds) FROM \"${var.host_metrics_namespace}\"", label = "binlog_oldest_unarchived_expiry_seconds (min)", id = "exp" }],
            [{ expression = "SELECT MAX(binlog_circuit_state) FROM \"${var.host_metrics_namespace}\"", label = "binlog_circuit_state (max)", id = "cs" }],
            [{ expression = "SELECT SUM(binlog_shipper_lineage_conflicts_total) FROM \"${var.host_metrics_namespace}\"", label = "binlog_shipper_lineage_conflicts_total", id = "hl" }],
          ]
        }
      },
    ]
  })
}
