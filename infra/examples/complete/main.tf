# A complete deployment of wacapi: the root that configures the AWS provider (region, default
# tags) and calls the module in infra/. Copy this directory for your own stack.
#
#   export AWS_REGION=eu-west-1          # or set var.region
#   terraform init
#   terraform apply -var-file=production.tfvars

provider "aws" {
  # null: the region comes from AWS_REGION (or the profile's region).
  region = var.region

  default_tags {
    tags = merge({ Application = var.name }, var.tags)
  }
}

module "wacapi" {
  source = "../.."

  name         = var.name
  architecture = var.architecture
  # Yours, always: the example's datasets are made up, and the module refuses them.
  rules_file                  = var.rules_file
  alarm_email                 = var.alarm_email
  detailed_metrics            = var.detailed_metrics
  dispatch_max_concurrency    = var.dispatch_max_concurrency
  dispatch_timeout_seconds    = var.dispatch_timeout_seconds
  graph_timeout_seconds       = var.graph_timeout_seconds
  log_retention_days          = var.log_retention_days
  log_level                   = var.log_level
  deletion_protection         = var.deletion_protection
  secret_recovery_window_days = var.secret_recovery_window_days
  permissions_boundary        = var.permissions_boundary
  tags                        = var.tags
}
