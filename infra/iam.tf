# One role per function, each allowed exactly the actions its code calls on exactly its
# resources (tests/tests/infra_contract.rs holds these documents against the code).

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ingest" {
  name                 = "${var.name}-webhook-ingest"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary
  tags                 = local.tags
}

resource "aws_iam_role" "dispatch" {
  name                 = "${var.name}-capi-dispatch"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary
  tags                 = local.tags
}

data "aws_iam_policy_document" "ingest" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.ingest.arn}:*"]
  }

  statement {
    sid       = "EnqueueSignalsAndQuarantine"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.signals.arn, aws_sqs_queue.dead_letters.arn]
  }

  statement {
    sid       = "ReadWebhookSecretAndEventKeys"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.webhook.arn, aws_secretsmanager_secret.events_keys.arn]
  }
}

data "aws_iam_policy_document" "dispatch" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dispatch.arn}:*"]
  }

  statement {
    sid       = "ConsumeSignals"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.signals.arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  statement {
    sid       = "ClicksAndLedger"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.main.arn]
  }

  statement {
    sid       = "ReadGraphTokens"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.graph_tokens.arn]
  }
}

resource "aws_iam_role_policy" "ingest" {
  name   = "webhook-ingest"
  role   = aws_iam_role.ingest.id
  policy = data.aws_iam_policy_document.ingest.json
}

resource "aws_iam_role_policy" "dispatch" {
  name   = "capi-dispatch"
  role   = aws_iam_role.dispatch.id
  policy = data.aws_iam_policy_document.dispatch.json
}
