# The signal queue (FIFO: one user's signals in order, message ids deduplicated for 5 minutes)
# and its dead-letter queue (FIFO, as SQS requires for a FIFO source). The ingest and the
# dispatcher also write to the dead-letter queue directly (quarantined webhook parts, refused
# events), so a redrive names its destination: README › Operate.
#
# Both hold messages of up to 1 MiB (1,048,576 bytes), the most SQS takes since August 2025 and
# what the code sends (wacapi_shared::queue::MAX_MESSAGE_BYTES): left out, the provider creates
# the queues with 262,144 bytes, and every signal or quarantined body between 256 KiB and 1 MiB
# would be refused (the ingest would answer 500 and Meta retry for days). The provider accepts
# 1 MiB from 6.8 on (versions.tf). SendMessageBatch takes at most 1 MiB in all too (SQS API
# reference, SendMessageBatch), which is how the code packs its batches (aws::sqs::batches).

resource "aws_sqs_queue" "dead_letters" {
  name                        = "${var.name}-dead-letters.fifo"
  fifo_queue                  = true
  content_based_deduplication = false
  max_message_size            = 1048576
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
  max_message_size            = 1048576
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
