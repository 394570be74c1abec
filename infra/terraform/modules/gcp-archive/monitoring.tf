# Log-based metrics from the function's structured logs, and alert policies.
# The function logs one JSON line per outcome with jsonPayload.event set to
# one of the keys below and jsonPayload.tenant / jsonPayload.server set (the
# log contract in infra/terraform/README.md, "Function metrics").

locals {
  function_events = {
    verified           = "Objects verified (decrypt, hash, CRC)"
    replicated         = "Objects copied to the S3 replica"
    integrity_failed   = "Objects that failed verification"
    lineage_conflicts  = "Objects whose name another binlog already holds"
    replication_failed = "Copies to the S3 replica that failed"
  }
  alerting_events = {
    integrity_failed   = "An archived object failed verification (decrypt, hash or CRC): find it in the function's logs; the object stays locked as evidence."
    lineage_conflicts  = "A different binlog claimed an archived name (RESET MASTER, rebuilt server): see `binlog-shipper status` on the host."
    replication_failed = "The function could not copy objects to S3: check its AWS credentials (aws_credentials_mode) and the replicator role."
  }
}

resource "google_logging_metric" "function" {
  for_each    = local.function_events
  project     = var.project_id
  name        = "${var.name}/${each.key}"
  description = each.value
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_name}\" AND jsonPayload.event=\"${each.key}\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "tenant"
      value_type  = "STRING"
      description = "Tenant (first segment of the object key)"
    }
    labels {
      key         = "server"
      value_type  = "STRING"
      description = "MySQL server_id"
    }
  }
  label_extractors = {
    tenant = "EXTRACT(jsonPayload.tenant)"
    server = "EXTRACT(jsonPayload.server)"
  }
}

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.alert_emails)
  project      = var.project_id
  display_name = "binlog-shipper ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_alert_policy" "function" {
  for_each              = local.alerting_events
  project               = var.project_id
  display_name          = "${var.name}: ${replace(each.key, "_", " ")}"
  combiner              = "OR"
  notification_channels = [for c in google_monitoring_notification_channel.email : c.id]
  documentation {
    content   = each.value
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "${each.key} > 0"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function[each.key].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.tenant"]
      }
      trigger {
        count = 1
      }
    }
  }
}

# Function crashes and timeouts are not outcomes the code logs: alert on the
# platform's own error log lines too.
resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  display_name          = "${var.name}: function errors"
  combiner              = "OR"
  notification_channels = [for c in google_monitoring_notification_channel.email : c.id]
  documentation {
    content   = "The verify/replicate function logged errors (crash, timeout): events are retried by Eventarc; see the function's logs."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "error log entries"
    condition_matched_log {
      filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_name}\" AND severity>=ERROR"
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "1800s"
  }
}
