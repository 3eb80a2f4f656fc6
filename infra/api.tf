# HTTP API: GET /webhook (Meta's verification handshake), POST /webhook (signed webhooks),
# POST /events (signed business events), stage throttling and JSON access logs.

resource "aws_apigatewayv2_api" "webhook" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "wacapi: WhatsApp webhooks in"
  tags          = local.tags
}

resource "aws_apigatewayv2_integration" "ingest" {
  api_id                 = aws_apigatewayv2_api.webhook.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.ingest.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 29000
}

resource "aws_apigatewayv2_route" "webhook_get" {
  #checkov:skip=CKV_AWS_309:Meta's verification handshake carries no credentials; the function checks the verify token in constant time.
  api_id    = aws_apigatewayv2_api.webhook.id
  route_key = "GET /webhook"
  target    = "integrations/${aws_apigatewayv2_integration.ingest.id}"
}

resource "aws_apigatewayv2_route" "webhook_post" {
  #checkov:skip=CKV_AWS_309:Meta cannot send API Gateway credentials; every POST is authenticated by its X-Hub-Signature-256 HMAC in the function, before anything is queued.
  api_id    = aws_apigatewayv2_api.webhook.id
  route_key = "POST /webhook"
  target    = "integrations/${aws_apigatewayv2_integration.ingest.id}"
}

resource "aws_apigatewayv2_route" "events_post" {
  #checkov:skip=CKV_AWS_309:CRMs and shops authenticate with an HMAC over the timestamp and body (X-Wacapi-Signature), checked by the function against rotatable keys.
  api_id    = aws_apigatewayv2_api.webhook.id
  route_key = "POST /events"
  target    = "integrations/${aws_apigatewayv2_integration.ingest.id}"
}

resource "aws_cloudwatch_log_group" "api" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30: the logs hold ids and hashes, kept for debugging); set 365 or more where policy requires.
  #checkov:skip=CKV_AWS_158:Access logs hold request ids, status codes and latencies only; the default CloudWatch encryption suffices.
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.webhook.id
  name        = "$default"
  auto_deploy = true
  tags        = local.tags

  default_route_settings {
    throttling_burst_limit   = var.api_throttling_burst_limit
    throttling_rate_limit    = var.api_throttling_rate_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      sourceIp           = "$context.identity.sourceIp"
    })
  }
}

resource "aws_lambda_permission" "api" {
  for_each      = toset(["webhook", "events"])
  statement_id  = "AllowApiGateway-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.ingest.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.webhook.execution_arn}/*/*/${each.key}"
}
