# CloudWatch Logs Insights saved queries (Logs › Logs Insights › Queries): the questions an
# operator asks first. The functions log JSON lines (tracing fields under `fields.`) and EMF
# metric documents into the same log groups.

locals {
  function_log_groups = [aws_cloudwatch_log_group.ingest.name, aws_cloudwatch_log_group.dispatch.name]
}

resource "aws_cloudwatch_query_definition" "trace_id" {
  name            = "${var.name}/trace a message or event id"
  log_group_names = local.function_log_groups
  # Replace the id: a wamid, an SQS message id, a signal or event id (ids only: logs hold no
  # personal data to search for).
  query_string = <<-EOT
    fields @timestamp, @logStream, level, fields.message, fields.signal_id, fields.message_id, fields.reason, fields.kind
    | filter @message like "REPLACE_WITH_ID"
    | sort @timestamp asc
    | limit 200
  EOT
}

resource "aws_cloudwatch_query_definition" "skips_by_reason" {
  name            = "${var.name}/events skipped by reason"
  log_group_names = [aws_cloudwatch_log_group.dispatch.name]
  query_string    = <<-EOT
    filter ispresent(EventsSkipped) and ispresent(Reason)
    | stats sum(EventsSkipped) as skipped by Reason
    | sort skipped desc
  EOT
}

resource "aws_cloudwatch_query_definition" "dead_letter_reasons" {
  name            = "${var.name}/dead-letter reasons"
  log_group_names = local.function_log_groups
  query_string    = <<-EOT
    filter (ispresent(DeadLetterMoves) or ispresent(BodiesQuarantined)) and ispresent(Reason)
    | stats sum(DeadLetterMoves) as moved_by_dispatch, sum(BodiesQuarantined) as quarantined_by_ingest by Reason
    | sort moved_by_dispatch desc
  EOT
}

resource "aws_cloudwatch_query_definition" "graph_errors" {
  name            = "${var.name}/Graph API errors by code and subcode"
  log_group_names = [aws_cloudwatch_log_group.dispatch.name]
  query_string    = <<-EOT
    filter fields.message = "Graph API error"
    | stats count(*) as errors, latest(fields.fbtrace_id) as last_fbtrace_id by fields.code, fields.subcode, fields.class
    | sort errors desc
  EOT
}

resource "aws_cloudwatch_query_definition" "events_by_channel" {
  name            = "${var.name}/events sent and skipped by channel"
  log_group_names = [aws_cloudwatch_log_group.dispatch.name]
  query_string    = <<-EOT
    filter ispresent(Channel) and (ispresent(EventsSent) or ispresent(EventsSkipped))
    | stats sum(EventsSent) as sent, sum(EventsSkipped) as skipped by Channel
    | sort sent desc
  EOT
}
