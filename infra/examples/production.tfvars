# terraform -chdir=infra apply -var-file=examples/production.tfvars
name                     = "wacapi"
architecture             = "x86_64"
artifacts_dir            = "../dist"
wacapi_cli               = "../dist/wacapi"
rules_file               = "../examples/wacapi.toml"
dispatch_max_concurrency = 5
dispatch_timeout_seconds = 60
log_retention_days       = 30
alarm_email              = "oncall@example.com"

tags = {
  Team = "growth"
}
