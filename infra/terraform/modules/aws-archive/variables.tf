variable "name" {
  type        = string
  description = "Name prefix of every resource (bucket, table, queues, functions, alarms), e.g. \"binlog-prod\"."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.name))
    error_message = "name must be 4-32 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "bucket_name" {
  type        = string
  description = "Globally unique name of the archive bucket (the host's s3://BUCKET target)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 characters of a-z, 0-9, '.' and '-'."
  }
}

variable "object_lock_mode" {
  type        = string
  description = "Default Object Lock retention mode of new objects: COMPLIANCE (nobody, not even root, can shorten it) or GOVERNANCE (principals with s3:BypassGovernanceRetention can)."
  default     = "COMPLIANCE"
  validation {
    condition     = contains(["COMPLIANCE", "GOVERNANCE"], var.object_lock_mode)
    error_message = "object_lock_mode must be COMPLIANCE or GOVERNANCE."
  }
}

variable "object_lock_days" {
  type        = number
  description = "Default Object Lock retention of every new object, in days. Set it to the longest point-in-time window you promise (binlogs older than the oldest kept base backup are useless)."
  default     = 35
  validation {
    condition     = var.object_lock_days >= 1 && var.object_lock_days <= 36500 && floor(var.object_lock_days) == var.object_lock_days
    error_message = "object_lock_days must be a whole number of days between 1 and 36500."
  }
}

variable "intelligent_tiering_after_days" {
  type        = number
  description = "Days after creation when objects move to S3 Intelligent-Tiering."
  default     = 0
  validation {
    condition     = var.intelligent_tiering_after_days >= 0 && floor(var.intelligent_tiering_after_days) == var.intelligent_tiering_after_days
    error_message = "intelligent_tiering_after_days must be a whole number >= 0."
  }
}

variable "glacier_ir_after_days" {
  type        = number
  description = "Days after creation when objects move to S3 Glacier Instant Retrieval (millisecond reads, so a restore does not wait). Must be later than intelligent_tiering_after_days."
  default     = 90
  validation {
    condition     = var.glacier_ir_after_days > var.intelligent_tiering_after_days
    error_message = "glacier_ir_after_days must be greater than intelligent_tiering_after_days."
  }
}

variable "expire_after_days" {
  type        = number
  description = "Days after creation when objects expire (a delete marker is placed; the locked version stays until its retention ends). null keeps objects forever."
  default     = null
  validation {
    condition     = var.expire_after_days == null || try(var.expire_after_days >= var.object_lock_days, false)
    error_message = "expire_after_days must be null or at least object_lock_days: an object cannot be deleted while it is locked."
  }
}

variable "abort_incomplete_multipart_days" {
  type        = number
  description = "Days after which an incomplete multipart upload (a killed shipper mid-upload) is aborted and its parts freed."
  default     = 2
  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 30
    error_message = "abort_incomplete_multipart_days must be between 1 and 30."
  }
}

variable "access_log_retention_days" {
  type        = number
  description = "Days the S3 server access logs of the archive bucket are kept."
  default     = 400
  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "access_log_retention_days must be at least 90 (audits ask for at least a quarter)."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the functions' CloudWatch log groups, in days (one of the values CloudWatch Logs accepts)."
  default     = 365
  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention of at least a year: 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "lambda_package_path" {
  type        = string
  description = "Path of the Lambda package that `make functions` builds (dist/functions/aws-lambda.zip)."
  validation {
    condition     = endswith(var.lambda_package_path, ".zip")
    error_message = "lambda_package_path must be the .zip that `make functions` builds (dist/functions/aws-lambda.zip)."
  }
}

variable "lambda_runtime" {
  type        = string
  description = "Python runtime of both Lambdas."
  default     = "python3.12"
  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.11, python3.12 or python3.13 (the package targets Python >= 3.11)."
  }
}

variable "lambda_architecture" {
  type        = string
  description = "Instruction set of both Lambdas. It must match the platform of the compiled wheels (cryptography, zstandard) in the package `make functions` builds."
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "verify_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the verify/replicate Lambda: its ceiling (so a burst cannot starve the account) and its floor (so other functions cannot starve it)."
  default     = 10
  validation {
    condition     = var.verify_reserved_concurrency >= 2 && var.verify_reserved_concurrency <= 1000
    error_message = "verify_reserved_concurrency must be between 2 (the SQS event source minimum) and 1000."
  }
}

variable "planner_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the restore-planner Lambda (invoked by operators, rarely)."
  default     = 2
  validation {
    condition     = var.planner_reserved_concurrency >= 1 && var.planner_reserved_concurrency <= 100
    error_message = "planner_reserved_concurrency must be between 1 and 100."
  }
}

variable "verify_timeout_seconds" {
  type        = number
  description = "Timeout of the verify/replicate Lambda. The queue's visibility timeout is six times this, as AWS advises for SQS event sources."
  default     = 300
  validation {
    condition     = var.verify_timeout_seconds >= 30 && var.verify_timeout_seconds <= 900
    error_message = "verify_timeout_seconds must be between 30 and 900."
  }
}

variable "verify_memory_mb" {
  type        = number
  description = "Memory of the verify/replicate Lambda (it streams objects in constant memory; more memory also means more CPU for decryption)."
  default     = 1024
  validation {
    condition     = var.verify_memory_mb >= 256 && var.verify_memory_mb <= 10240
    error_message = "verify_memory_mb must be between 256 and 10240."
  }
}

variable "planner_memory_mb" {
  type        = number
  description = "Memory of the restore-planner Lambda. Lambda gives CPU in proportion to memory (one vCPU at 1769 MB); planning 10,000 binlogs takes about 0.5 s of CPU (bench/RESULTS.md), so less memory makes a plan slower, and a plan is rare enough that the cost is negligible."
  default     = 1769
  validation {
    condition     = var.planner_memory_mb >= 256 && var.planner_memory_mb <= 10240
    error_message = "planner_memory_mb must be between 256 and 10240."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Deliveries of one S3 event before it moves to the dead-letter queue."
  default     = 5
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 100
    error_message = "max_receive_count must be between 1 and 100."
  }
}

variable "replica_gcs_bucket" {
  type        = string
  description = "GCS bucket the verify Lambda replicates AWS-primary objects to (the gcp-archive module's bucket_name output). Empty: no replication."
  default     = ""
  validation {
    condition     = var.replica_gcs_bucket == "" || can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", var.replica_gcs_bucket))
    error_message = "replica_gcs_bucket must be empty or a GCS bucket name."
  }
}

variable "gcp_credential_config_json" {
  type        = string
  description = "Workload identity federation credential configuration that lets the verify Lambda act as the GCP replicator service account (the gcp-archive module's aws_credential_config_json output). It holds no secret: GCP exchanges the Lambda's signed AWS identity for a short-lived token."
  default     = ""
  validation {
    condition     = var.gcp_credential_config_json == "" || can(jsondecode(var.gcp_credential_config_json).type)
    error_message = "gcp_credential_config_json must be empty or an external_account credential configuration (JSON)."
  }
}

variable "gcp_function_service_account_id" {
  type        = string
  description = "Unique (numeric) id of the GCP Cloud Function's service account (the gcp-archive module's function_service_account_unique_id output). Set, it creates the IAM role that function assumes with its Google ID token to replicate GCS-primary objects here. Empty: no such role."
  default     = ""
  validation {
    condition     = var.gcp_function_service_account_id == "" || can(regex("^[0-9]{10,30}$", var.gcp_function_service_account_id))
    error_message = "gcp_function_service_account_id must be empty or the numeric unique id of a service account."
  }
}

variable "gcp_function_audience" {
  type        = string
  description = "Audience the Cloud Function requests its Google ID token for when it assumes the replicator role (must equal the gcp-archive module's aws_audience)."
  default     = "binlog-shipper-aws-replicator"
  validation {
    condition     = length(var.gcp_function_audience) > 0
    error_message = "gcp_function_audience must not be empty."
  }
}

variable "host_metrics_namespace" {
  type        = string
  description = "CloudWatch namespace the hosts' Prometheus metrics are published under (CloudWatch agent prometheus scrape), used by the dashboard and the archive-lag alarm."
  default     = "BinlogShipper/Host"
  validation {
    condition     = length(var.host_metrics_namespace) > 0 && !startswith(var.host_metrics_namespace, "AWS/")
    error_message = "host_metrics_namespace must not be empty nor start with AWS/."
  }
}

variable "archive_lag_alarm_seconds" {
  type        = number
  description = "Alarm when a host's binlog_archive_lag_seconds (oldest closed binlog not yet archived) exceeds this."
  default     = 900
  validation {
    condition     = var.archive_lag_alarm_seconds >= 60
    error_message = "archive_lag_alarm_seconds must be at least 60."
  }
}

variable "queue_depth_alarm" {
  type        = number
  description = "Alarm when more than this many S3 events wait in the verify queue."
  default     = 1000
  validation {
    condition     = var.queue_depth_alarm >= 1
    error_message = "queue_depth_alarm must be at least 1."
  }
}

variable "alarm_emails" {
  type        = list(string)
  description = "E-mail addresses subscribed to the alarm topic (each must confirm the subscription)."
  default     = []
  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must be e-mail addresses."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before a scheduled KMS key deletion takes effect (the keys decrypt every archived object)."
  default     = 30
  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource that takes tags."
  default     = {}
}
