output "webhook_url" {
  description = "Callback URL to register in the Meta app (WhatsApp › Configuration › Webhook)."
  value       = module.wacapi.webhook_url
}

output "events_url" {
  description = "Endpoint for business-reported conversions."
  value       = module.wacapi.events_url
}

output "webhook_secret_arn" {
  description = "Secret to fill with {\"app_secret\": ..., \"verify_token\": ...}."
  value       = module.wacapi.webhook_secret_arn
}

output "graph_tokens_secret_arn" {
  description = "Secret to fill with {\"access_tokens\": {\"default\": ...}, \"app_secret\": ...}."
  value       = module.wacapi.graph_tokens_secret_arn
}

output "events_keys_secret_arn" {
  description = "Secret to fill with {\"keys\": [\"<signing key>\"]}."
  value       = module.wacapi.events_keys_secret_arn
}

output "signal_queue_url" {
  description = "URL of the signal FIFO queue."
  value       = module.wacapi.signal_queue_url
}

output "signal_queue_arn" {
  description = "ARN of the signal queue: the destination of a dead-letter redrive."
  value       = module.wacapi.signal_queue_arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter FIFO queue."
  value       = module.wacapi.dead_letter_queue_url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue: the source of a redrive."
  value       = module.wacapi.dead_letter_queue_arn
}

output "table_name" {
  description = "DynamoDB table of clicks, the sent-ledger and the conversion report (`wacapi report --table`)."
  value       = module.wacapi.table_name
}

output "report_reader_policy_json" {
  description = "IAM policy to attach to whoever runs `wacapi report --table`."
  value       = module.wacapi.report_reader_policy_json
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = module.wacapi.alarm_topic_arn
}

output "dashboard_url" {
  description = "CloudWatch dashboard."
  value       = module.wacapi.dashboard_url
}
