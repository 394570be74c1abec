terraform {
  # 1.9: variable validations may refer to other variables (tiering order, retention).
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
  }
}
