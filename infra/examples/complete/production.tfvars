# terraform apply -var-file=production.tfvars   (from infra/examples/complete, AWS_REGION set)
name                     = "wacapi"
architecture             = "x86_64"
dispatch_max_concurrency = 5
dispatch_timeout_seconds = 60
log_retention_days       = 30
alarm_email              = "oncall@example.com"
# rules_file             = "/path/to/your/wacapi.toml"   # your WABA and dataset ids

tags = {
  Team = "growth"
}
