variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "wacapi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,31}$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits or dashes, starting with a letter (DynamoDB table names need at least 3 characters)."
  }
}

variable "architecture" {
  description = "Lambda architecture the binaries were built for: x86_64 or arm64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "artifacts_dir" {
  description = "Directory holding webhook-ingest.zip and capi-dispatch.zip, as built by scripts/package; null is the repository's dist/ (found from the module's own path, whatever the root)."
  type        = string
  default     = null
}

variable "rules_file" {
  description = "Path of your rules and accounts TOML file, deployed with the dispatcher (required: start from examples/wacapi.toml and put your own WABA, Page or Instagram account ids and dataset ids in it)."
  type        = string

  validation {
    condition     = can(file(var.rules_file))
    error_message = "rules_file must be a readable file: your copy of examples/wacapi.toml with your own account and dataset ids."
  }

  # The repository's example and built-in datasets are made up: a deployment on them would send
  # every conversion to datasets that do not exist (Meta refuses them, or worse, someone else's).
  validation {
    condition     = !can(file(var.rules_file)) || length(regexall("dataset_id\\s*=\\s*[\"'](0+|1234567890123456|9876543210987654|2345678901234567|3456789012345678)[\"']", file(var.rules_file))) == 0
    error_message = "rules_file names a placeholder dataset_id (one of examples/wacapi.toml's, or 0): put the id of your own dataset (Events Manager, or GET /{WABA_ID}/dataset) in each account."
  }
}

variable "wacapi_cli" {
  description = "Path of the wacapi CLI, which validates rules_file before a new layer version goes live; null is the repository's dist/wacapi."
  type        = string
  default     = null
}

variable "ingest_memory_mb" {
  description = "Memory of the webhook-ingest function (MB)."
  type        = number
  default     = 256

  validation {
    condition     = floor(var.ingest_memory_mb) == var.ingest_memory_mb && var.ingest_memory_mb >= 128 && var.ingest_memory_mb <= 10240
    error_message = "ingest_memory_mb must be between 128 and 10240, a whole number."
  }
}

variable "ingest_timeout_seconds" {
  description = "Timeout of the webhook-ingest function; API Gateway waits at most 30 s."
  type        = number
  default     = 10

  validation {
    condition     = floor(var.ingest_timeout_seconds) == var.ingest_timeout_seconds && var.ingest_timeout_seconds >= 3 && var.ingest_timeout_seconds <= 29
    error_message = "ingest_timeout_seconds must be between 3 and 29, a whole number."
  }
}

variable "dispatch_memory_mb" {
  description = "Memory of the capi-dispatch function (MB)."
  type        = number
  default     = 256

  validation {
    condition     = floor(var.dispatch_memory_mb) == var.dispatch_memory_mb && var.dispatch_memory_mb >= 128 && var.dispatch_memory_mb <= 10240
    error_message = "dispatch_memory_mb must be between 128 and 10240, a whole number."
  }
}

variable "dispatch_timeout_seconds" {
  description = "Timeout of the capi-dispatch function; the queue's visibility timeout is six times this."
  type        = number
  default     = 60

  validation {
    condition     = floor(var.dispatch_timeout_seconds) == var.dispatch_timeout_seconds && var.dispatch_timeout_seconds >= 15 && var.dispatch_timeout_seconds <= 900
    error_message = "dispatch_timeout_seconds must be between 15 and 900, a whole number."
  }
}

variable "dispatch_batch_size" {
  description = "SQS records per dispatch invocation (a FIFO event source takes at most 10)."
  type        = number
  default     = 10

  validation {
    condition     = floor(var.dispatch_batch_size) == var.dispatch_batch_size && var.dispatch_batch_size >= 1 && var.dispatch_batch_size <= 10
    error_message = "dispatch_batch_size must be between 1 and 10, a whole number."
  }
}

variable "dispatch_max_concurrency" {
  description = "Most concurrent dispatch invocations the queue may drive; protects Graph API rate limits."
  type        = number
  default     = 5

  validation {
    condition     = floor(var.dispatch_max_concurrency) == var.dispatch_max_concurrency && var.dispatch_max_concurrency >= 2 && var.dispatch_max_concurrency <= 1000
    error_message = "dispatch_max_concurrency must be between 2 and 1000 (the event source mapping minimum is 2), a whole number."
  }
}

variable "max_receive_count" {
  description = "Deliveries of a signal before SQS moves it to the dead-letter queue."
  type        = number
  default     = 10

  validation {
    condition     = floor(var.max_receive_count) == var.max_receive_count && var.max_receive_count >= 3 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 3 and 1000, a whole number."
  }
}

variable "signal_retention_seconds" {
  description = "How long the signal queue keeps a message (it must cover an outage of the Graph API or a token)."
  type        = number
  default     = 345600

  validation {
    condition     = floor(var.signal_retention_seconds) == var.signal_retention_seconds && var.signal_retention_seconds >= 3600 && var.signal_retention_seconds <= 1209600
    error_message = "signal_retention_seconds must be between 3600 and 1209600, a whole number."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 30

  validation {
    condition     = floor(var.log_retention_days) == var.log_retention_days && contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ...), a whole number."
  }
}

variable "log_level" {
  description = "Level of wacapi's own logs in both functions (WACAPI_LOG_LEVEL). Metrics are not logs: Lambda's application level stays at INFO (or more verbose), so no value drops the EMF metrics the alarms read."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

variable "detailed_metrics" {
  description = "Publish the dispatcher's metric breakdowns by event name, rule and match key, and their dashboard widgets. Each value of such a breakdown is a custom metric CloudWatch bills ($0.30 a month each): with a handful of events, rules and keys, about 25 more. Off, the same numbers are in the conversion report (wacapi report --table) and Logs Insights; the alarms never need them."
  type        = bool
  default     = false
}

variable "system_log_level" {
  description = "Level of Lambda's own log lines. WARN (the default) keeps Lambda's warnings and errors about the functions and drops the INFO lines START, END and REPORT (duration, billed duration, memory, init duration per invocation): the same figures are Lambda's CloudWatch metrics (Duration, Errors, Throttles) on the dashboard, and dropping the lines saves log ingestion. INFO keeps them, for Logs Insights queries per invocation; DEBUG adds Lambda's extension and telemetry lines."
  type        = string
  default     = "WARN"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN"], var.system_log_level)
    error_message = "system_log_level must be one of DEBUG, INFO, WARN."
  }
}

variable "api_throttling_burst_limit" {
  description = "API Gateway stage burst limit (requests)."
  type        = number
  default     = 500

  validation {
    condition     = floor(var.api_throttling_burst_limit) == var.api_throttling_burst_limit && var.api_throttling_burst_limit >= 1
    error_message = "api_throttling_burst_limit must be positive, a whole number."
  }
}

variable "api_throttling_rate_limit" {
  description = "API Gateway stage steady rate limit (requests per second)."
  type        = number
  default     = 200

  validation {
    condition     = floor(var.api_throttling_rate_limit) == var.api_throttling_rate_limit && var.api_throttling_rate_limit >= 1
    error_message = "api_throttling_rate_limit must be positive, a whole number."
  }
}

variable "alarm_email" {
  description = "Email address subscribed to the alarm topic; null subscribes nobody."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an email address."
  }

  # The example's placeholder (RFC 2606 reserves .example and example.com for documentation):
  # a subscription there would leave every alarm unread.
  validation {
    condition     = var.alarm_email == null || !can(regex("(?i)(\\.example|@example\\.(com|org|net))$", var.alarm_email))
    error_message = "alarm_email is a placeholder (an example domain): put the address that should receive the alarms, or null."
  }
}

variable "oldest_signal_alarm_seconds" {
  description = "Alarm when the oldest signal has waited longer than this."
  type        = number
  default     = 900

  validation {
    condition     = floor(var.oldest_signal_alarm_seconds) == var.oldest_signal_alarm_seconds && var.oldest_signal_alarm_seconds >= 60
    error_message = "oldest_signal_alarm_seconds must be at least 60, a whole number."
  }
}

variable "graph_error_rate_alarm_percent" {
  description = "Alarm when Graph API errors exceed this share of Graph requests over 5 minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.graph_error_rate_alarm_percent > 0 && var.graph_error_rate_alarm_percent <= 100
    error_message = "graph_error_rate_alarm_percent must be in (0, 100]."
  }
}

variable "graph_api_base_url" {
  description = "Graph API base URL."
  type        = string
  default     = "https://graph.facebook.com"

  validation {
    condition     = can(regex("^https://", var.graph_api_base_url))
    error_message = "graph_api_base_url must be an https URL."
  }
}

variable "tiktok_api_base_url" {
  description = "TikTok API for Business base URL (Events API 2.0 for accounts with a tiktok event set)."
  type        = string
  default     = "https://business-api.tiktok.com"

  validation {
    condition     = can(regex("^https://", var.tiktok_api_base_url))
    error_message = "tiktok_api_base_url must be an https URL."
  }
}

variable "graph_timeout_seconds" {
  description = "Timeout of one Graph API request."
  type        = number
  default     = 10

  validation {
    condition     = floor(var.graph_timeout_seconds) == var.graph_timeout_seconds && var.graph_timeout_seconds >= 1 && var.graph_timeout_seconds <= 60
    error_message = "graph_timeout_seconds must be between 1 and 60, a whole number."
  }
}

variable "secret_ttl_seconds" {
  description = "How long the functions reuse a secret value before reading it again."
  type        = number
  default     = 300

  validation {
    condition     = floor(var.secret_ttl_seconds) == var.secret_ttl_seconds && var.secret_ttl_seconds >= 0 && var.secret_ttl_seconds <= 86400
    error_message = "secret_ttl_seconds must be between 0 and 86400, a whole number."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' EMF metrics."
  type        = string
  default     = "wacapi"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_.#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a valid CloudWatch namespace (letters, digits, . - _ / # :) not starting with AWS/, which is reserved for AWS services."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags (beside the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary" {
  description = "ARN of an IAM policy set as the permissions boundary of both function roles (organisations that require one); null sets none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/", var.permissions_boundary))
    error_message = "permissions_boundary must be an IAM policy ARN."
  }
}

variable "deletion_protection" {
  description = "Protect the DynamoDB table (clicks and sent-ledger) from deletion; set false for test stacks that are destroyed and recreated."
  type        = bool
  default     = true
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored; 0 deletes at once (test stacks, so the same name can be created again), otherwise 7 to 30."
  type        = number
  default     = 7

  validation {
    condition     = floor(var.secret_recovery_window_days) == var.secret_recovery_window_days && (var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30))
    error_message = "secret_recovery_window_days must be 0 or a whole number from 7 to 30."
  }
}
