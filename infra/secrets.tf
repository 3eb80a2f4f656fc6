# Secrets are created empty: their values are set out of band (README › Deploy), so they never
# enter Terraform state.

resource "aws_secretsmanager_secret" "webhook" {
  #checkov:skip=CKV_AWS_149:The AWS-managed key suffices; a customer key would add a KMS permission and cost without a second reader to separate.
  #checkov:skip=CKV2_AWS_57:The Meta app secret and verify token are rotated in the Meta app, not by a rotation Lambda; README › Operate explains the steps.
  name                    = "${var.name}/webhook"
  description             = "wacapi ingest: {\"app_secret\": \"...\", \"verify_token\": \"...\"}"
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret" "graph_tokens" {
  #checkov:skip=CKV_AWS_149:The AWS-managed key suffices; a customer key would add a KMS permission and cost without a second reader to separate.
  #checkov:skip=CKV2_AWS_57:System-user tokens are issued in Meta Business Manager, not by a rotation Lambda; README › Operate explains the steps.
  name                    = "${var.name}/graph-tokens"
  description             = "wacapi dispatch: {\"access_tokens\": {\"default\": \"EAAG...\"}, \"app_secret\": \"...\", \"tiktok_access_tokens\": {\"default\": \"...\"} (with TikTok event sets)}"
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret" "events_keys" {
  #checkov:skip=CKV_AWS_149:The AWS-managed key suffices; a customer key would add a KMS permission and cost without a second reader to separate.
  #checkov:skip=CKV2_AWS_57:Keys are shared with the CRM or shop that signs requests; rotation is adding a key, switching the caller, then removing the old key (README › Business events API).
  name                    = "${var.name}/events-keys"
  description             = "wacapi POST /events signing keys: {\"keys\": [\"...\", \"...\"]}"
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}
