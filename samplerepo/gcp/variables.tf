variable "project_id" {
  type        = string
  description = "GCP project of the archive."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id."
  }
}

variable "region" {
  type        = string
  description = "Region of the bucket, key ring and function."
  default     = "europe-west1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a GCP region such as europe-west1."
  }
}

variable "bucket_name" {
  type        = string
  description = "Globally unique name of the GCS archive bucket."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid GCS bucket name."
  }
}

variable "retention_days" {
  type        = number
  description = "Retention of every archived object, in days (match the AWS root's object_lock_days)."
  default     = 35
  validation {
    condition     = var.retention_days >= 1
    error_message = "retention_days must be at least 1."
  }
}

variable "lock_retention_policy" {
  type        = bool
  description = "Lock the bucket's retention policy (irreversible)."
  default     = false
}

variable "alert_emails" {
  type        = list(string)
  description = "Who gets the alerts."
  default     = []
}

variable "shop_host_members" {
  type        = list(string)
  description = "Identities of the hosts of tenant shop (AWS-primary: they write GCS only when S3 is failing), e.g. a workload identity pool principalSet."
  validation {
    condition     = length(var.shop_host_members) > 0
    error_message = "shop_host_members must list at least one member."
  }
}

variable "ledger_host_members" {
  type        = list(string)
  description = "Identities of the hosts of tenant ledger (GCS-primary)."
  validation {
    condition     = length(var.ledger_host_members) > 0
    error_message = "ledger_host_members must list at least one member."
  }
}

# The AWS side. aws_account_id is known up front; the rest comes from the AWS
# root's outputs (second pass, see README.md).
variable "aws_account_id" {
  type        = string
  description = "AWS account of the S3 archive."
  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be a 12-digit account id."
  }
}

variable "aws_region" {
  type        = string
  description = "Region of the S3 archive (aws root output region)."
  default     = "eu-west-1"
}

variable "s3_bucket" {
  type        = string
  description = "Name of the S3 archive bucket (the AWS root's bucket_name: you choose it, so it is known on the first pass)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.s3_bucket))
    error_message = "s3_bucket must be a valid S3 bucket name."
  }
}

variable "aws_verify_role_name" {
  type        = string
  description = "Role name of the verify Lambda (aws root output verify_role_name)."
  default     = "binlog-prod-verify-replicate"
}

variable "aws_replicator_role_arn" {
  type        = string
  description = "Role the function assumes (aws root output gcp_replicator_role_arn)."
  default     = ""
}

variable "aws_catalog_table" {
  type        = string
  description = "DynamoDB catalog (aws root output catalog_table)."
  default     = ""
}

variable "aws_envelope_key_arn" {
  type        = string
  description = "AWS envelope key (aws root output envelope_key_arn), for the config snippets and the function's AWS_KMS_KEY_ID."
  default     = ""
}
