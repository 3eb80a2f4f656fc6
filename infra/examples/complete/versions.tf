terraform {
  required_version = ">= 1.6"

  # Remote state, opt-in: keep the state in S3, locked by S3 itself (`use_lockfile`, Terraform
  # 1.10 or later; no DynamoDB lock table needed), so a team or a CI runner applies against one
  # state and two applies cannot interleave. Create the bucket first (versioning on, default
  # encryption, public access blocked), uncomment, fill in, and run
  # `terraform init -migrate-state`. The deploying identity then also needs s3:GetObject,
  # s3:PutObject, s3:DeleteObject on the key and its `.tflock`, and s3:ListBucket on the bucket
  # (infra/deployer-policy.json leaves the state bucket out).
  #
  # backend "s3" {
  #   bucket       = "<your-terraform-state-bucket>"
  #   key          = "wacapi/terraform.tfstate"
  #   region       = "<the bucket's region>"
  #   encrypt      = true
  #   use_lockfile = true
  # }

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.8, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}
