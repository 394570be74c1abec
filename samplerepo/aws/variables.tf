variable "region" {
  type        = string
  description = "AWS region of the archive."
  default     = "eu-west-1"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "bucket_name" {
  type        = string
  description = "Globally unique name of the S3 archive bucket."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name."
  }
}

variable "object_lock_days" {
  type        = number
  description = "Object Lock retention of every archived object, in days (the point-in-time window)."
  default     = 35
  validation {
    condition     = var.object_lock_days >= 1
    error_message = "object_lock_days must be at least 1."
  }
}

variable "alarm_emails" {
  type        = list(string)
  description = "Who gets the alarms."
  default     = []
}

variable "shop_host_role_arns" {
  type        = list(string)
  description = "Roles of the hosts of tenant shop (AWS-primary), e.g. their EC2 instance profile roles."
  validation {
    condition     = length(var.shop_host_role_arns) > 0
    error_message = "shop_host_role_arns must list at least one role ARN."
  }
}

variable "ledger_host_role_arns" {
  type        = list(string)
  description = "Roles of the hosts of tenant ledger (GCS-primary): they write S3 only when GCS is failing."
  validation {
    condition     = length(var.ledger_host_role_arns) > 0
    error_message = "ledger_host_role_arns must list at least one role ARN."
  }
}

# From the GCP root's outputs (apply it first; see README.md).
variable "gcs_bucket" {
  type        = string
  description = "The GCS archive bucket (gcp root output gcs_bucket)."
  default     = ""
}

variable "gcp_envelope_keys" {
  type        = map(string)
  description = "Each tenant's GCP envelope key (gcp root output envelope_keys), for the config snippets."
  default     = {}
}

variable "gcp_function_service_account_id" {
  type        = string
  description = "Unique id of the GCP function's service account (gcp root output function_service_account_unique_id)."
  default     = ""
}

variable "gcp_credential_config_json" {
  type        = string
  description = "Workload identity federation config for the verify Lambda (gcp root output aws_credential_config_json)."
  default     = ""
}
