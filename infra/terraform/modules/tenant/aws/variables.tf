variable "tenant" {
  type        = string
  description = "Tenant name: the first segment of every object key ({tenant}/mysql/...) and the tenant of every encryption context."
  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.tenant))
    error_message = "tenant must be 1-20 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-' (it is a key prefix, an IAM tag value and part of a GCP service account id)."
  }
}

variable "primary" {
  type        = string
  description = "Which cloud this tenant's hosts write first: \"aws\" or \"gcp\" (the other is the fallback when the primary's circuit is open)."
  validation {
    condition     = contains(["aws", "gcp"], var.primary)
    error_message = "primary must be \"aws\" or \"gcp\"."
  }
}

variable "name" {
  type        = string
  description = "Name prefix of the archive (the aws-archive module's name); the role is NAME-tenant-TENANT."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.name))
    error_message = "name must be 4-32 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "bucket_name" {
  type        = string
  description = "Archive bucket (aws-archive output bucket_name)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be an S3 bucket name."
  }
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the archive bucket (aws-archive output bucket_arn)."
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN."
  }
}

variable "region" {
  type        = string
  description = "Region of the archive (aws-archive output region)."
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "envelope_key_arn" {
  type        = string
  description = "KMS key that wraps envelope data keys (aws-archive output envelope_key_arn)."
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.envelope_key_arn))
    error_message = "envelope_key_arn must be a KMS key ARN."
  }
}

variable "archive_key_arn" {
  type        = string
  description = "KMS key of the bucket's SSE-KMS (aws-archive output archive_key_arn)."
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.archive_key_arn))
    error_message = "archive_key_arn must be a KMS key ARN."
  }
}

variable "catalog_table_arn" {
  type        = string
  description = "ARN of the DynamoDB catalog (aws-archive output catalog_table_arn)."
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/.+$", var.catalog_table_arn))
    error_message = "catalog_table_arn must be a DynamoDB table ARN."
  }
}

variable "tenant_tag_key" {
  type        = string
  description = "Tag key the envelope key policy compares with the context's tenant (aws-archive output tenant_tag_key)."
  default     = "binlog-shipper-tenant"
  validation {
    condition     = length(var.tenant_tag_key) > 0
    error_message = "tenant_tag_key must not be empty."
  }
}

variable "host_principal_arns" {
  type        = list(string)
  description = "IAM principals allowed to assume this tenant's role: the hosts' own roles (EC2 instance profile role, IAM Roles Anywhere role, ...). Never a whole account."
  validation {
    condition     = length(var.host_principal_arns) > 0 && alltrue([for a in var.host_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", a))])
    error_message = "host_principal_arns must list at least one IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME); account roots are refused."
  }
}

variable "gcs_bucket" {
  type        = string
  description = "The GCS archive bucket, for the config snippet (gcp-archive output bucket_name). Empty: an AWS-only snippet."
  default     = ""
  validation {
    condition     = var.gcs_bucket != "" || var.primary == "aws"
    error_message = "gcs_bucket must be set for a GCS-primary tenant: its config's first target is the GCS bucket."
  }
}

variable "gcp_kms_key_name" {
  type        = string
  description = "This tenant's GCP envelope key, for the config snippet (tenant/gcp output envelope_key_name). Empty: the snippet wraps with AWS KMS only."
  default     = ""
  validation {
    condition     = var.gcp_kms_key_name == "" || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.gcp_kms_key_name))
    error_message = "gcp_kms_key_name must be empty or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the role."
  default     = {}
}
