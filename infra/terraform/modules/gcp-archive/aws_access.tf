# Cross-cloud credentials, both ways, without long-lived keys by default.
#
# GCS -> S3 (the function): it presents a Google-signed ID token of its own
# service account (audience var.aws_audience) to AWS STS and assumes
# var.aws_replicator_role_arn, which trusts exactly that account. Fallback
# (aws_credentials_mode = "secret"): access keys of an IAM user in a Secret
# Manager secret created here, empty; add a version yourself (README).
#
# S3 -> GCS (the verify Lambda): a workload identity pool trusts the AWS
# account; only the verify Lambda's role may impersonate the replicator
# service account, which may only create and read archive objects.

resource "google_secret_manager_secret" "aws_credentials" {
  count     = var.aws_credentials_mode == "secret" ? 1 : 0
  project   = var.project_id
  secret_id = "${var.name}-aws-credentials"
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
  labels = var.labels
}

resource "google_secret_manager_secret_iam_member" "function_reads_aws_credentials" {
  count     = length(google_secret_manager_secret.aws_credentials)
  project   = var.project_id
  secret_id = google_secret_manager_secret.aws_credentials[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function.member
}

locals {
  from_aws = var.aws_account_id != "" && var.aws_verify_role_name != ""
}

resource "google_iam_workload_identity_pool" "aws" {
  count                     = local.from_aws ? 1 : 0
  project                   = var.project_id
  workload_identity_pool_id = "${var.name}-aws"
  display_name              = "binlog-shipper AWS archive"
  description               = "The verify Lambda of AWS account ${var.aws_account_id}"
}

resource "google_iam_workload_identity_pool_provider" "aws" {
  # checkov:skip=CKV_GCP_125:a GitHub Actions OIDC check; this is an AWS provider (no oidc block), which the check reports as FAILED; the attribute_condition below admits one role
  count                              = local.from_aws ? 1 : 0
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.aws[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "aws-${var.aws_account_id}"
  display_name                       = "AWS ${var.aws_account_id}"
  aws {
    account_id = var.aws_account_id
  }
  attribute_mapping = {
    "google.subject"     = "assertion.arn"
    "attribute.aws_role" = "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
  }
  # Only the verify Lambda's role of that account gets a token at all.
  attribute_condition = "attribute.aws_role == \"arn:aws:sts::${var.aws_account_id}:assumed-role/${var.aws_verify_role_name}\""
}

resource "google_service_account" "from_aws" {
  count        = local.from_aws ? 1 : 0
  project      = var.project_id
  account_id   = "${var.name}-from-aws"
  display_name = "binlog-shipper replication from S3"
}

resource "google_service_account_iam_member" "lambda_impersonates" {
  count              = local.from_aws ? 1 : 0
  service_account_id = google_service_account.from_aws[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.aws[0].name}/attribute.aws_role/arn:aws:sts::${var.aws_account_id}:assumed-role/${var.aws_verify_role_name}"
}

# Create and read only: no delete, so no overwrite either (the copy is
# conditional on generation 0) and nothing it holds can remove an object.
resource "google_storage_bucket_iam_member" "from_aws_creates" {
  count  = local.from_aws ? 1 : 0
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.from_aws[0].member
}

resource "google_storage_bucket_iam_member" "from_aws_reads" {
  count  = local.from_aws ? 1 : 0
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.from_aws[0].member
}

locals {
  # The credential configuration file the Lambda loads (google-auth
  # external_account, AWS flavour). It holds no secret.
  aws_credential_config = local.from_aws ? jsonencode({
    type                              = "external_account"
    audience                          = "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.aws[0].name}"
    subject_token_type                = "urn:ietf:params:aws:token-type:aws4_request"
    service_account_impersonation_url = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${google_service_account.from_aws[0].email}:generateAccessToken"
    token_url                         = "https://sts.googleapis.com/v1/token"
    credential_source = {
      environment_id                 = "aws1"
      regional_cred_verification_url = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    }
  }) : ""
}
