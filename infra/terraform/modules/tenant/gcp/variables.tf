variable "tenant" {
  type        = string
  description = "Tenant name: the first segment of every object key ({tenant}/mysql/...)."
  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.tenant))
    error_message = "tenant must be 1-20 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-' (it is a key prefix and part of a service account id)."
  }
}

variable "primary" {
  type        = string
  description = "Which cloud this tenant's hosts write first: \"aws\" or \"gcp\"."
  validation {
    condition     = contains(["aws", "gcp"], var.primary)
    error_message = "primary must be \"aws\" or \"gcp\"."
  }
}

variable "project_id" {
  type        = string
  description = "GCP project of the archive."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id."
  }
}

variable "bucket_name" {
  type        = string
  description = "Archive bucket (gcp-archive output bucket_name)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a GCS bucket name."
  }
}

variable "key_ring_id" {
  type        = string
  description = "Key ring of the archive (gcp-archive output key_ring_id); the tenant's envelope key is created in it."
  validation {
    condition     = can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+$", var.key_ring_id))
    error_message = "key_ring_id must be projects/P/locations/L/keyRings/R."
  }
}

variable "bucket_metadata_reader_role" {
  type        = string
  description = "Custom role with storage.buckets.get only (gcp-archive output bucket_metadata_reader_role), so the host's dry-run can read the bucket's settings."
  validation {
    condition     = can(regex("^projects/[^/]+/roles/[A-Za-z0-9_.]+$", var.bucket_metadata_reader_role))
    error_message = "bucket_metadata_reader_role must be projects/P/roles/ROLE."
  }
}

variable "function_service_account_email" {
  type        = string
  description = "Service account of the verify function (gcp-archive output function_service_account_email): it may decrypt this tenant's envelope keys to verify objects."
  validation {
    condition     = can(regex("^[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.function_service_account_email))
    error_message = "function_service_account_email must be a service account e-mail."
  }
}

variable "host_members" {
  type        = list(string)
  description = "IAM members that may act as the tenant's service account (roles/iam.workloadIdentityUser and serviceAccountTokenCreator on it): the hosts' own identities, e.g. a workload identity pool principal. No key is ever created for it."
  validation {
    condition     = length(var.host_members) > 0 && alltrue([for m in var.host_members : can(regex("^(serviceAccount:|principal://|principalSet://)", m))])
    error_message = "host_members must list serviceAccount:, principal:// or principalSet:// members (no users, groups or allUsers)."
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

variable "s3_bucket" {
  type        = string
  description = "The S3 archive bucket, for the config snippet (aws-archive output bucket_name). Empty: a GCP-only snippet."
  default     = ""
  validation {
    condition     = var.s3_bucket != "" || var.primary == "gcp"
    error_message = "s3_bucket must be set for an AWS-primary tenant: its config's first target is the S3 bucket."
  }
}

variable "aws_region" {
  type        = string
  description = "Region of the S3 archive, for the config snippet."
  default     = ""
  validation {
    condition     = var.aws_region == "" || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be empty or an AWS region such as eu-west-1."
  }
}

variable "aws_kms_key_arn" {
  type        = string
  description = "The AWS envelope key, for the config snippet (aws-archive output envelope_key_arn). Empty: the snippet wraps with GCP KMS only."
  default     = ""
  validation {
    condition     = var.aws_kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.aws_kms_key_arn))
    error_message = "aws_kms_key_arn must be empty or a KMS key ARN."
  }
}
