output "webhook_url" {
  description = "Callback URL to register in the Meta app (WhatsApp › Configuration › Webhook)."
  value       = "${aws_apigatewayv2_stage.default.invoke_url}webhook"
}

output "events_url" {
  description = "Endpoint for business-reported conversions (POST, signed with a key of events_keys_secret_arn)."
  value       = "${aws_apigatewayv2_stage.default.invoke_url}events"
}

output "events_keys_secret_arn" {
  description = "Secret to fill with {\"keys\": [\"<signing key>\"]} for POST /events."
  value       = aws_secretsmanager_secret.events_keys.arn
}

output "webhook_secret_arn" {
  description = "Secret to fill with {\"app_secret\": ..., \"verify_token\": ...}."
  value       = aws_secretsmanager_secret.webhook.arn
}

output "graph_tokens_secret_arn" {
  description = "Secret to fill with {\"access_tokens\": {\"default\": ...}, \"app_secret\": ..., \"tiktok_access_tokens\": {\"default\": ...} (with TikTok event sets)}."
  value       = aws_secretsmanager_secret.graph_tokens.arn
}

output "signal_queue_url" {
  description = "URL of the signal FIFO queue."
  value       = aws_sqs_queue.signals.url
}

output "signal_queue_arn" {
  description = "ARN of the signal FIFO queue: the destination of a dead-letter redrive (`aws sqs start-message-move-task --destination-arn`)."
  value       = aws_sqs_queue.signals.arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter FIFO queue."
  value       = aws_sqs_queue.dead_letters.url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue (the source of `aws sqs start-message-move-task`)."
  value       = aws_sqs_queue.dead_letters.arn
}

output "table_name" {
  description = "DynamoDB table holding clicks, the sent-ledger and the conversion report's daily aggregates (`wacapi report --table`)."
  value       = aws_dynamodb_table.main.name
}

output "report_reader_policy_json" {
  description = "IAM policy for whoever runs `wacapi report --table` (a Scan of the table; the functions' roles never get it)."
  value = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "ReadConversionReport"
      Effect   = "Allow"
      Action   = ["dynamodb:Scan", "dynamodb:DescribeTable"]
      Resource = aws_dynamodb_table.main.arn
    }]
  })
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_url" {
  description = "CloudWatch dashboard."
  value       = "https://console.aws.amazon.com/cloudwatch/home?region=${data.aws_region.current.region}#dashboards:name=${aws_cloudwatch_dashboard.main.dashboard_name}"
}
