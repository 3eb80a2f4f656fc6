# terraform apply -var-file=production.tfvars   (from infra/examples/complete, AWS_REGION set)
#
# Fill in what is marked REQUIRED before the first apply; the rest are working defaults.

# REQUIRED: your rules and accounts file: a copy of examples/wacapi.toml with your own WABA (Page,
# Instagram account) ids and dataset ids (Events Manager, or GET /{WABA_ID}/dataset). Plan
# refuses a path that does not exist and the example's made-up dataset ids.
rules_file = "../../../my-wacapi.toml"

# REQUIRED in practice: who is told when an alarm fires (confirm the email SNS sends). Without
# it the alarms notify nobody.
alarm_email = "you@your-company.example"

name                     = "wacapi"
architecture             = "x86_64" # the architecture scripts/package built for (dist/build.json)
dispatch_max_concurrency = 5
dispatch_timeout_seconds = 60
log_retention_days       = 30

tags = {
  Team = "growth"
}
