# Both functions: provided.al2023 custom runtime (`bootstrap`), JSON logs into log groups with
# retention, environment exactly as the code reads it (held against the code by tests).

locals {
  ingest_name   = "${var.name}-webhook-ingest"
  dispatch_name = "${var.name}-capi-dispatch"
  # Where the rules layer puts the rules file inside the dispatcher's sandbox.
  rules_path = "/opt/wacapi/rules.toml"
  # Build outputs of scripts/package, found from this module's own path so the module works from
  # any root and any working directory.
  artifacts_dir = coalesce(var.artifacts_dir, abspath("${path.module}/../dist"))
  wacapi_cli    = coalesce(var.wacapi_cli, abspath("${path.module}/../dist/wacapi"))
  # What scripts/package built (dist/build.json, from the binaries' ELF headers): a zip of the
  # other architecture would deploy and then fail every invocation (Runtime.InvalidEntrypoint).
  build = try(jsondecode(file("${local.artifacts_dir}/build.json")), null)
  tags  = merge({ Application = var.name }, var.tags)
  # Lambda's log-level filtering gives every JSON line without a valid `level` the level INFO
  # and drops it below the application level (Lambda Developer Guide, "Log-level filtering"):
  # the EMF documents the alarms and the dashboard read have none. So Lambda's application
  # level never rises above INFO, and wacapi's own verbosity is WACAPI_LOG_LEVEL.
  application_log_level = contains(["TRACE", "DEBUG"], var.log_level) ? var.log_level : "INFO"
}

resource "aws_cloudwatch_log_group" "ingest" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30: the logs hold ids and hashes, kept for debugging); set 365 or more where policy requires.
  #checkov:skip=CKV_AWS_158:Logs hold ids and hashes only (no personal data); the default CloudWatch encryption suffices.
  name              = "/aws/lambda/${local.ingest_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "dispatch" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30: the logs hold ids and hashes, kept for debugging); set 365 or more where policy requires.
  #checkov:skip=CKV_AWS_158:Logs hold ids and hashes only (no personal data); the default CloudWatch encryption suffices.
  name              = "/aws/lambda/${local.dispatch_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_lambda_function" "ingest" {
  #checkov:skip=CKV_AWS_117:The function calls only AWS public endpoints; a VPC would add NAT cost and cold-start time without a private resource to reach.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway: there is no async event to dead-letter; failed webhooks are answered 5xx and Meta retries them.
  #checkov:skip=CKV_AWS_173:The environment holds queue URLs and secret ARNs, no secret values.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the deployer owns; the zip is built and hashed by scripts/package.
  #checkov:skip=CKV_AWS_50:X-Ray would need xray:PutTraceSegments on "*"; the functions log ids and EMF metrics instead.
  #checkov:skip=CKV_AWS_115:API Gateway stage throttling bounds the ingest; reserving concurrency would take it from the account pool.
  function_name    = local.ingest_name
  description      = "wacapi: verifies WhatsApp webhooks and business events and queues their signals"
  role             = aws_iam_role.ingest.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${local.artifacts_dir}/webhook-ingest.zip"
  source_code_hash = filebase64sha256("${local.artifacts_dir}/webhook-ingest.zip")
  memory_size      = var.ingest_memory_mb
  timeout          = var.ingest_timeout_seconds

  environment {
    variables = {
      WACAPI_SIGNAL_QUEUE_URL      = aws_sqs_queue.signals.url
      WACAPI_DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letters.url
      WACAPI_WEBHOOK_SECRET_ARN    = aws_secretsmanager_secret.webhook.arn
      WACAPI_EVENTS_SECRET_ARN     = aws_secretsmanager_secret.events_keys.arn
      WACAPI_SECRET_TTL_SECONDS    = tostring(var.secret_ttl_seconds)
      WACAPI_METRICS_NAMESPACE     = var.metrics_namespace
      WACAPI_LOG_LEVEL             = var.log_level
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.ingest.name
    application_log_level = local.application_log_level
    system_log_level      = var.system_log_level
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = try(local.build.architecture, null) == var.architecture
      error_message = "The zips in ${local.artifacts_dir} were built for ${try(local.build.architecture, "an unknown architecture (no build.json: run scripts/package)")}, not for architecture = \"${var.architecture}\": rebuild with scripts/package (WACAPI_TARGET=aarch64-unknown-linux-gnu.2.34 for arm64) or set architecture to match."
    }
  }

  depends_on = [aws_iam_role_policy.ingest]
}

resource "aws_lambda_function" "dispatch" {
  #checkov:skip=CKV_AWS_117:The function calls AWS and Graph API public endpoints; a VPC would add NAT cost and cold-start time without a private resource to reach.
  #checkov:skip=CKV_AWS_116:Invoked by the SQS event source mapping: failed records return to the queue, whose redrive policy dead-letters them.
  #checkov:skip=CKV_AWS_173:The environment holds a table name, a queue URL, a secret ARN and settings, no secret values.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the deployer owns; the zip is built and hashed by scripts/package.
  #checkov:skip=CKV_AWS_50:X-Ray would need xray:PutTraceSegments on "*"; the functions log ids and EMF metrics instead.
  #checkov:skip=CKV_AWS_115:The event source mapping's maximum_concurrency bounds the dispatcher (var.dispatch_max_concurrency) without taking from the account pool.
  function_name    = local.dispatch_name
  description      = "wacapi: maps signals to Conversions API events and sends them to Meta"
  role             = aws_iam_role.dispatch.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${local.artifacts_dir}/capi-dispatch.zip"
  source_code_hash = filebase64sha256("${local.artifacts_dir}/capi-dispatch.zip")
  memory_size      = var.dispatch_memory_mb
  timeout          = var.dispatch_timeout_seconds
  layers           = [aws_lambda_layer_version.rules.arn]

  environment {
    variables = {
      WACAPI_DEAD_LETTER_QUEUE_URL  = aws_sqs_queue.dead_letters.url
      WACAPI_TABLE_NAME             = aws_dynamodb_table.main.name
      WACAPI_GRAPH_TOKEN_SECRET_ARN = aws_secretsmanager_secret.graph_tokens.arn
      WACAPI_CONFIG_FILE            = local.rules_path
      WACAPI_GRAPH_BASE_URL         = var.graph_api_base_url
      WACAPI_TIKTOK_BASE_URL        = var.tiktok_api_base_url
      WACAPI_GRAPH_TIMEOUT_SECONDS  = tostring(var.graph_timeout_seconds)
      WACAPI_SECRET_TTL_SECONDS     = tostring(var.secret_ttl_seconds)
      WACAPI_METRICS_NAMESPACE      = var.metrics_namespace
      WACAPI_LOG_LEVEL              = var.log_level
      WACAPI_DETAILED_METRICS       = tostring(var.detailed_metrics)
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.dispatch.name
    application_log_level = local.application_log_level
    system_log_level      = var.system_log_level
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = try(local.build.architecture, null) == var.architecture
      error_message = "The zips in ${local.artifacts_dir} were built for ${try(local.build.architecture, "an unknown architecture (no build.json: run scripts/package)")}, not for architecture = \"${var.architecture}\": rebuild with scripts/package (WACAPI_TARGET=aarch64-unknown-linux-gnu.2.34 for arm64) or set architecture to match."
    }
    precondition {
      # A Graph request, the dispatcher's safety margin (2 s) and the sent marks must fit in one
      # invocation, or a slow Graph API would time the function out mid-batch.
      condition     = var.graph_timeout_seconds + 5 <= var.dispatch_timeout_seconds
      error_message = "graph_timeout_seconds (${var.graph_timeout_seconds}) must be at least 5 s below dispatch_timeout_seconds (${var.dispatch_timeout_seconds}): lower graph_timeout_seconds or raise dispatch_timeout_seconds."
    }
  }

  depends_on = [aws_iam_role_policy.dispatch]
}

resource "aws_lambda_event_source_mapping" "signals" {
  event_source_arn        = aws_sqs_queue.signals.arn
  function_name           = aws_lambda_function.dispatch.arn
  batch_size              = var.dispatch_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.dispatch_max_concurrency
  }

  tags = local.tags
}
