variable "project_id" {
  type        = string
  description = "GCP project that holds the archive."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "name" {
  type        = string
  description = "Name prefix of every resource (key ring, function, service accounts, metrics), e.g. \"binlog-prod\"."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,14}[a-z0-9]$", var.name))
    error_message = "name must be 4-16 characters of a-z, 0-9 and '-', starting with a letter (service account ids are built from it)."
  }
}

variable "region" {
  type        = string
  description = "Region of the bucket, the key ring and the function (one region, so the Eventarc trigger and the CMEK key are local to the bucket)."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a GCP region such as europe-west1 (a single region: Eventarc storage triggers need the bucket's region)."
  }
}

variable "bucket_name" {
  type        = string
  description = "Globally unique name of the archive bucket (the host's gs://BUCKET target)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name)) && !startswith(var.bucket_name, "goog")
    error_message = "bucket_name must be 3-63 characters of a-z, 0-9, '-' and '_' and must not start with \"goog\"."
  }
}

variable "retention_days" {
  type        = number
  description = "Bucket retention policy: no object can be deleted or replaced before it is this many days old."
  default     = 35
  validation {
    condition     = var.retention_days >= 1 && var.retention_days <= 36500 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days between 1 and 36500."
  }
}

variable "lock_retention_policy" {
  type        = bool
  description = "Lock the retention policy. IRREVERSIBLE: a locked policy can never be shortened or removed, and the bucket cannot be deleted until every object has aged out. Turn it on once the retention is final."
  default     = false
}

variable "nearline_after_days" {
  type        = number
  description = "Days after creation when objects move to Nearline (30-day minimum storage)."
  default     = 30
  validation {
    condition     = var.nearline_after_days >= 0 && floor(var.nearline_after_days) == var.nearline_after_days
    error_message = "nearline_after_days must be a whole number >= 0."
  }
}

variable "coldline_after_days" {
  type        = number
  description = "Days after creation when objects move to Coldline (90-day minimum storage). Must be later than nearline_after_days."
  default     = 90
  validation {
    condition     = var.coldline_after_days > var.nearline_after_days
    error_message = "coldline_after_days must be greater than nearline_after_days."
  }
}

variable "soft_delete_days" {
  type        = number
  description = "Soft-delete window: an object deleted after its retention ended can still be restored for this many days (0 turns soft delete off)."
  default     = 30
  validation {
    condition     = var.soft_delete_days == 0 || (var.soft_delete_days >= 7 && var.soft_delete_days <= 90)
    error_message = "soft_delete_days must be 0 or between 7 and 90."
  }
}

variable "access_log_retention_days" {
  type        = number
  description = "Days the bucket's usage and storage logs are kept (they are also retention-locked for this long)."
  default     = 400
  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "access_log_retention_days must be at least 90."
  }
}

variable "function_source_dir" {
  type        = string
  description = "Directory that `make functions` builds for the Cloud Function (dist/functions/gcp/, with main.py and requirements.txt)."
  validation {
    condition     = length(trimspace(var.function_source_dir)) > 0
    error_message = "function_source_dir must be the directory `make functions` builds (dist/functions/gcp/)."
  }
}

variable "function_runtime" {
  type        = string
  description = "Python runtime of the Cloud Function."
  default     = "python312"
  validation {
    condition     = contains(["python311", "python312", "python313"], var.function_runtime)
    error_message = "function_runtime must be python311, python312 or python313."
  }
}

variable "function_max_instances" {
  type        = number
  description = "Maximum instances of the Cloud Function (its concurrency ceiling)."
  default     = 10
  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 1000
    error_message = "function_max_instances must be between 1 and 1000."
  }
}

variable "function_memory" {
  type        = string
  description = "Memory of the Cloud Function (it streams objects in constant memory)."
  default     = "1Gi"
  validation {
    condition     = contains(["512Mi", "1Gi", "2Gi", "4Gi", "8Gi"], var.function_memory)
    error_message = "function_memory must be one of 512Mi, 1Gi, 2Gi, 4Gi, 8Gi."
  }
}

variable "function_timeout_seconds" {
  type        = number
  description = "Timeout of one verification (an event-triggered 2nd gen function allows at most 540 s)."
  default     = 300
  validation {
    condition     = var.function_timeout_seconds >= 30 && var.function_timeout_seconds <= 540
    error_message = "function_timeout_seconds must be between 30 and 540."
  }
}

variable "replica_s3_bucket" {
  type        = string
  description = "S3 bucket the function replicates GCS-primary objects to (the aws-archive module's bucket_name output). Empty: no replication."
  default     = ""
  validation {
    condition     = var.replica_s3_bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.replica_s3_bucket))
    error_message = "replica_s3_bucket must be empty or an S3 bucket name."
  }
}

variable "aws_region" {
  type        = string
  description = "Region of the AWS archive (S3 replica, DynamoDB catalog)."
  default     = "us-east-1"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region such as eu-west-1."
  }
}

variable "aws_catalog_table" {
  type        = string
  description = "DynamoDB catalog table the function records objects in (the aws-archive module's catalog_table_name output). Empty only for the first apply, before the AWS root exists: until it is set, the function refuses every event (Eventarc retries them)."
  default     = ""
  validation {
    condition     = var.aws_catalog_table == "" || can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.aws_catalog_table))
    error_message = "aws_catalog_table must be empty or a DynamoDB table name."
  }
}

variable "tenants" {
  type        = list(string)
  description = "Tenants with a tenant/gcp module on this archive: the function unwraps their data keys with each one's envelope-TENANT key (named here, not read from the tenant modules, so there is no dependency cycle)."
  default     = []
  validation {
    condition     = alltrue([for t in var.tenants : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", t))])
    error_message = "Each tenant must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (the shipper's tenant rule)."
  }
}

variable "aws_kms_key_id" {
  type        = string
  description = "The AWS envelope key (the aws-archive module's envelope_key_arn output): the function's AWS_KMS_KEY_ID, for dual-cloud tenants whose data keys it wraps too. Empty: the function unwraps with GCP KMS only."
  default     = ""
  validation {
    condition     = var.aws_kms_key_id == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.aws_kms_key_id))
    error_message = "aws_kms_key_id must be empty or a KMS key (or alias) ARN."
  }
}

variable "aws_credentials_mode" {
  type        = string
  description = "How the function gets AWS credentials: \"workload_identity\" (preferred: it assumes aws_replicator_role_arn with its Google ID token, no stored secret) or \"secret\" (fallback: access keys in a Secret Manager secret this module creates and you fill)."
  default     = "workload_identity"
  validation {
    condition     = contains(["workload_identity", "secret"], var.aws_credentials_mode)
    error_message = "aws_credentials_mode must be \"workload_identity\" or \"secret\"."
  }
}

variable "aws_replicator_role_arn" {
  type        = string
  description = "IAM role the function assumes with its Google ID token (the aws-archive module's gcp_replicator_role_arn output). Empty until the AWS side exists."
  default     = ""
  validation {
    condition     = var.aws_replicator_role_arn == "" || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.aws_replicator_role_arn))
    error_message = "aws_replicator_role_arn must be empty or an IAM role ARN."
  }
}

variable "aws_audience" {
  type        = string
  description = "Audience of the Google ID token the function presents to AWS STS (must equal the aws-archive module's gcp_function_audience)."
  default     = "binlog-shipper-aws-replicator"
  validation {
    condition     = length(var.aws_audience) > 0
    error_message = "aws_audience must not be empty."
  }
}

variable "aws_account_id" {
  type        = string
  description = "AWS account of the archive. Set, it creates the workload identity pool through which the verify Lambda (aws_verify_role_name) replicates AWS-primary objects into this bucket. Empty: no AWS-to-GCS replication."
  default     = ""
  validation {
    condition     = var.aws_account_id == "" || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be empty or a 12-digit AWS account id."
  }
}

variable "aws_verify_role_name" {
  type        = string
  description = "Name of the verify Lambda's IAM role (the aws-archive module names it NAME-verify-replicate)."
  default     = ""
  validation {
    condition     = var.aws_verify_role_name == "" || can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.aws_verify_role_name))
    error_message = "aws_verify_role_name must be empty or an IAM role name."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "E-mail addresses that receive the alert policies' notifications."
  default     = []
  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "key_rotation_period" {
  type        = string
  description = "Rotation period of the KMS keys, in seconds with an s suffix (Cloud KMS's duration format): at most 90 days, \"7776000s\"."
  default     = "7776000s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.key_rotation_period)) && try(tonumber(trimsuffix(var.key_rotation_period, "s")) >= 86400 && tonumber(trimsuffix(var.key_rotation_period, "s")) <= 7776000, false)
    error_message = "key_rotation_period must be between \"86400s\" (1 day) and \"7776000s\" (90 days)."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}
}
