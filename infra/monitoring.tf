# Alarms (to an SNS topic, optionally emailed) and a dashboard. Metric names in the wacapi
# namespace are the ones the code emits (tests/tests/infra_contract.rs checks them).

locals {
  ingest_dims   = { Service = "webhook-ingest" }
  dispatch_dims = { Service = "capi-dispatch" }

  # Alarms on the functions' own EMF metrics: sum over 5 minutes above a threshold.
  wacapi_alarms = {
    signature-failures = {
      service     = "webhook-ingest"
      metric      = "SignatureFailures"
      threshold   = 5
      description = "Webhooks with a missing or wrong X-Hub-Signature-256: a rotated app secret not yet stored, or someone probing the endpoint."
    }
    business-auth-failures = {
      service     = "webhook-ingest"
      metric      = "BusinessAuthFailures"
      threshold   = 5
      description = "POST /events requests with a missing, stale or wrong X-Wacapi-Signature: a caller with an old key, a skewed clock, or someone probing."
    }
    graph-auth-errors = {
      service     = "capi-dispatch"
      metric      = "GraphAuthErrors"
      threshold   = 0
      description = "The Graph API refused the access token or its permissions (codes 190, 102, 3, 10, 200-299), or the configured graph_api_version as deprecated (code 2635): events are kept; fix the token or the version (README › Operate)."
    }
    graph-version-warnings = {
      service     = "capi-dispatch"
      metric      = "GraphVersionWarnings"
      threshold   = 0
      description = "Meta's answers carry X-Ad-Api-Version-Warning: graph_api_version is deprecated (Meta auto-upgrades the calls to a version nobody chose) or about to be. Set graph_api_version to the version wacapi check-config names and deploy (README › Operate)."
    }
    graph-receipt-mismatches = {
      service     = "capi-dispatch"
      metric      = "GraphReceiptMismatches"
      threshold   = 0
      description = "Meta answered 200 without counting every event sent: the records are on the dead-letter queue as graph_receipt_mismatch; check Events Manager before a redrive (README › Operate)."
    }
    tiktok-auth-errors = {
      service     = "capi-dispatch"
      metric      = "TikTokAuthErrors"
      threshold   = 0
      description = "TikTok's Events API refused the access token or its permissions (codes 40001, 40102-40105): TikTok events are kept; put a working token under tiktok_access_tokens in the tokens secret (README › TikTok)."
    }
    ledger-write-failures = {
      service     = "capi-dispatch"
      metric      = "LedgerWriteFailures"
      threshold   = 0
      description = "Events reached Meta but their sent marks were not written: a redelivery could send them twice."
    }
  }
}

# The alarm topic is encrypted with a key of its own: the AWS-managed alias/aws/sns key's policy
# cannot be changed to let CloudWatch alarms publish, and alarms to a topic under that key are
# silently never delivered.
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "alarms_key" {
  #checkov:skip=CKV_AWS_111:A key policy's resource "*" is the key itself; write access is the account root's key administration, as AWS's default key policy grants.
  #checkov:skip=CKV_AWS_356:In a key policy "*" means this key only; there is no other resource to name.
  #checkov:skip=CKV_AWS_109:The account administers its own key (AWS's default key policy); CloudWatch gets Decrypt and GenerateDataKey only, for this account's alarms.
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_partition" "current" {}

resource "aws_kms_key" "alarms" {
  description             = "${var.name}: encrypts the alarm topic; CloudWatch alarms may use it to publish"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarms_key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "Signals or webhook bodies are on the dead-letter queue: read their wacapi_reason attribute, fix, then redrive (README › Operate)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_signal" {
  alarm_name          = "${var.name}-oldest-signal"
  alarm_description   = "Signals wait in the queue: the dispatcher is failing or throttled."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.signals.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.oldest_signal_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = { ingest = aws_lambda_function.ingest.function_name, dispatch = aws_lambda_function.dispatch.function_name }
  alarm_name          = "${each.value}-errors"
  alarm_description   = "The function failed (init error, crash or timeout)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  for_each            = { ingest = aws_lambda_function.ingest.function_name, dispatch = aws_lambda_function.dispatch.function_name }
  alarm_name          = "${each.value}-throttles"
  alarm_description   = "The function was throttled by Lambda concurrency limits."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name}-api-5xx"
  alarm_description   = "The webhook endpoint answered 5xx: Meta retries, but a queue or secret is unavailable."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = aws_apigatewayv2_api.webhook.id, Stage = aws_apigatewayv2_stage.default.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "wacapi" {
  for_each            = local.wacapi_alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = var.metrics_namespace
  metric_name         = each.value.metric
  dimensions          = { Service = each.value.service }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# The Graph error-rate alarm was a resource of its own before TikTok joined it.
moved {
  from = aws_cloudwatch_metric_alarm.graph_error_rate
  to   = aws_cloudwatch_metric_alarm.error_rate["graph"]
}

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  for_each = {
    graph  = { errors = "GraphErrors", requests = "GraphRequests", label = "Graph API" }
    tiktok = { errors = "TikTokErrors", requests = "TikTokRequests", label = "TikTok Events API" }
  }
  alarm_name          = "${var.name}-${each.key}-error-rate"
  alarm_description   = "${each.value.label} errors above ${var.graph_error_rate_alarm_percent}% of requests."
  evaluation_periods  = 1
  threshold           = var.graph_error_rate_alarm_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "${each.value.label} error rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = var.metrics_namespace
      metric_name = each.value.errors
      dimensions  = local.dispatch_dims
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = var.metrics_namespace
      metric_name = each.value.requests
      dimensions  = local.dispatch_dims
      stat        = "Sum"
      period      = 300
    }
  }
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat([
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Webhooks in"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "WebhooksReceived", "Service", "webhook-ingest"],
            [var.metrics_namespace, "SignalsEnqueued", "Service", "webhook-ingest"],
            [var.metrics_namespace, "StatusesIgnored", "Service", "webhook-ingest"],
            [var.metrics_namespace, "SignatureFailures", "Service", "webhook-ingest"],
            [var.metrics_namespace, "BodiesQuarantined", "Service", "webhook-ingest"],
            [var.metrics_namespace, "EnqueueFailures", "Service", "webhook-ingest"],
            [var.metrics_namespace, "BusinessEventsQueued", "Service", "webhook-ingest"],
            [var.metrics_namespace, "BusinessEventsRejected", "Service", "webhook-ingest"],
            [var.metrics_namespace, "BusinessAuthFailures", "Service", "webhook-ingest"],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Events out"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch"],
            [var.metrics_namespace, "EventsSkipped", "Service", "capi-dispatch"],
            [var.metrics_namespace, "DedupHits", "Service", "capi-dispatch"],
            [var.metrics_namespace, "CustomDataValuesDropped", "Service", "capi-dispatch"],
            [var.metrics_namespace, "DeadLetterMoves", "Service", "capi-dispatch"],
            [var.metrics_namespace, "RecordsFailed", "Service", "capi-dispatch"],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Graph API"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "GraphRequests", "Service", "capi-dispatch"],
            [var.metrics_namespace, "GraphErrors", "Service", "capi-dispatch"],
            [var.metrics_namespace, "GraphAuthErrors", "Service", "capi-dispatch"],
            [var.metrics_namespace, "GraphVersionWarnings", "Service", "capi-dispatch"],
            [var.metrics_namespace, "GraphReceiptMismatches", "Service", "capi-dispatch"],
            [var.metrics_namespace, "AmbiguousResends", "Service", "capi-dispatch"],
            [var.metrics_namespace, "EventsPerRequest", "Service", "capi-dispatch", { stat = "Average" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Event age at send (s)"
          region = data.aws_region.current.region
          period = 300
          metrics = [
            [var.metrics_namespace, "EventAgeAtSend", "Service", "capi-dispatch", { stat = "p50" }],
            [var.metrics_namespace, "EventAgeAtSend", "Service", "capi-dispatch", { stat = "p99" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Queues"
          region = data.aws_region.current.region
          stat   = "Maximum"
          period = 60
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.signals.name],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.signals.name],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dead_letters.name],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Lambda health"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.ingest.function_name],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.ingest.function_name],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.ingest.function_name],
            ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.dispatch.function_name],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.dispatch.function_name],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.dispatch.function_name],
            ["AWS/Lambda", "Duration", "FunctionName", aws_lambda_function.dispatch.function_name, { stat = "p99" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 12, height = 6
        properties = {
          title  = "Signals in by channel"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "SignalsEnqueued", "Service", "webhook-ingest", "Channel", "whatsapp"],
            [var.metrics_namespace, "SignalsEnqueued", "Service", "webhook-ingest", "Channel", "messenger"],
            [var.metrics_namespace, "SignalsEnqueued", "Service", "webhook-ingest", "Channel", "instagram"],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 18, width = 12, height = 6
        properties = {
          title  = "Events sent and skipped by channel"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch", "Channel", "whatsapp"],
            [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch", "Channel", "messenger"],
            [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch", "Channel", "instagram"],
            [var.metrics_namespace, "EventsSkipped", "Service", "capi-dispatch", "Channel", "whatsapp"],
            [var.metrics_namespace, "EventsSkipped", "Service", "capi-dispatch", "Channel", "messenger"],
            [var.metrics_namespace, "EventsSkipped", "Service", "capi-dispatch", "Channel", "instagram"],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 24, width = 12, height = 6
        properties = {
          title  = "Events sent by destination"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch", "Destination", "meta"],
            [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch", "Destination", "tiktok"],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 24, width = 12, height = 6
        properties = {
          title  = "TikTok Events API"
          region = data.aws_region.current.region
          stat   = "Sum"
          period = 300
          metrics = [
            [var.metrics_namespace, "TikTokRequests", "Service", "capi-dispatch"],
            [var.metrics_namespace, "TikTokErrors", "Service", "capi-dispatch"],
            [var.metrics_namespace, "TikTokAuthErrors", "Service", "capi-dispatch"],
          ]
        }
      },
      ],
      # Conversions by event name and by rule, and match-key coverage: the detailed metrics
      # (var.detailed_metrics), each value of which CloudWatch bills as a metric of its own. The
      # conversion report (`wacapi report`) and Logs Insights have the same numbers either way.
      # SEARCH lists whatever names exist.
      var.detailed_metrics ? [
        {
          type = "metric", x = 0, y = 30, width = 12, height = 6
          properties = {
            title  = "Events sent by event name"
            region = data.aws_region.current.region
            period = 300
            metrics = [
              [{ id = "by_event", label = "", expression = "SEARCH('{${var.metrics_namespace},Service,EventName} MetricName=\"EventsSent\" Service=\"capi-dispatch\"', 'Sum', 300)" }],
            ]
          }
        },
        {
          type = "metric", x = 12, y = 30, width = 12, height = 6
          properties = {
            title  = "Events sent by rule"
            region = data.aws_region.current.region
            period = 300
            metrics = [
              [{ id = "by_rule", label = "", expression = "SEARCH('{${var.metrics_namespace},Service,Rule} MetricName=\"EventsSent\" Service=\"capi-dispatch\"', 'Sum', 300)" }],
            ]
          }
        },
        {
          type = "metric", x = 0, y = 36, width = 24, height = 6
          properties = {
            title  = "Match-key coverage: % of sent events carrying each key (Event Match Quality proxy)"
            region = data.aws_region.current.region
            period = 3600
            yAxis  = { left = { min = 0, max = 100 } }
            metrics = [
              [{ id = "keys", visible = false, expression = "SEARCH('{${var.metrics_namespace},Service,Key} MetricName=\"MatchKeyEvents\" Service=\"capi-dispatch\"', 'Sum', 3600)" }],
              [var.metrics_namespace, "EventsSent", "Service", "capi-dispatch", { id = "sent", stat = "Sum", visible = false }],
              [{ id = "share", label = "", expression = "100 * keys / sent" }],
            ]
          }
        },
    ] : [])
  })
}

data "aws_region" "current" {}
