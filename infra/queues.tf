# The signal queue (FIFO: one user's signals in order, message ids deduplicated for 5 minutes)
# and its dead-letter queue (FIFO, as SQS requires for a FIFO source). The ingest and the
# dispatcher also write to the dead-letter queue directly (quarantined webhook parts, refused
# events), so a redrive names its destination: README › Operate.

resource "aws_sqs_queue" "dead_letters" {
  name                        = "${var.name}-dead-letters.fifo"
  fifo_queue                  = true
  content_based_deduplication = false
  message_retention_seconds   = 1209600
  sqs_managed_sse_enabled     = true
  tags                        = local.tags
}

resource "aws_sqs_queue" "signals" {
  name                        = "${var.name}-signals.fifo"
  fifo_queue                  = true
  content_based_deduplication = false
  deduplication_scope         = "messageGroup"
  fifo_throughput_limit       = "perMessageGroupId"
  # Six times the dispatch timeout, as Lambda recommends for SQS event sources, so a batch is
  # never redelivered while an invocation may still be working on it.
  visibility_timeout_seconds = 6 * var.dispatch_timeout_seconds
  message_retention_seconds  = var.signal_retention_seconds
  sqs_managed_sse_enabled    = true
  tags                       = local.tags

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.signals.arn]
  })
}
