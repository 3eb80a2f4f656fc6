variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "wacapi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.name))
    error_message = "name must be 1-32 lowercase letters, digits or dashes, starting with a letter."
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
  description = "Directory holding webhook-ingest.zip and capi-dispatch.zip, as built by scripts/package."
  type        = string
  default     = "../dist"
}

variable "rules_file" {
  description = "Path of the rules and accounts TOML file deployed with the dispatcher; null deploys the built-in defaults."
  type        = string
  default     = null

  validation {
    condition     = var.rules_file == null || can(file(var.rules_file))
    error_message = "rules_file must be a readable file."
  }
}

variable "wacapi_cli" {
  description = "Command that runs the wacapi CLI; it validates rules_file before a new version goes live."
  type        = string
  default     = "../dist/wacapi"
}

variable "ingest_memory_mb" {
  description = "Memory of the webhook-ingest function (MB)."
  type        = number
  default     = 256

  validation {
    condition     = var.ingest_memory_mb >= 128 && var.ingest_memory_mb <= 10240
    error_message = "ingest_memory_mb must be between 128 and 10240."
  }
}

variable "ingest_timeout_seconds" {
  description = "Timeout of the webhook-ingest function; API Gateway waits at most 30 s."
  type        = number
  default     = 10

  validation {
    condition     = var.ingest_timeout_seconds >= 3 && var.ingest_timeout_seconds <= 29
    error_message = "ingest_timeout_seconds must be between 3 and 29."
  }
}

variable "dispatch_memory_mb" {
  description = "Memory of the capi-dispatch function (MB)."
  type        = number
  default     = 256

  validation {
    condition     = var.dispatch_memory_mb >= 128 && var.dispatch_memory_mb <= 10240
    error_message = "dispatch_memory_mb must be between 128 and 10240."
  }
}

variable "dispatch_timeout_seconds" {
  description = "Timeout of the capi-dispatch function; the queue's visibility timeout is six times this."
  type        = number
  default     = 60

  validation {
    condition     = var.dispatch_timeout_seconds >= 15 && var.dispatch_timeout_seconds <= 900
    error_message = "dispatch_timeout_seconds must be between 15 and 900."
  }
}

variable "dispatch_batch_size" {
  description = "SQS records per dispatch invocation (a FIFO event source takes at most 10)."
  type        = number
  default     = 10

  validation {
    condition     = var.dispatch_batch_size >= 1 && var.dispatch_batch_size <= 10
    error_message = "dispatch_batch_size must be between 1 and 10."
  }
}

variable "dispatch_max_concurrency" {
  description = "Most concurrent dispatch invocations the queue may drive; protects Graph API rate limits."
  type        = number
  default     = 5

  validation {
    condition     = var.dispatch_max_concurrency >= 2 && var.dispatch_max_concurrency <= 1000
    error_message = "dispatch_max_concurrency must be between 2 and 1000 (the event source mapping minimum is 2)."
  }
}

variable "max_receive_count" {
  description = "Deliveries of a signal before SQS moves it to the dead-letter queue."
  type        = number
  default     = 10

  validation {
    condition     = var.max_receive_count >= 3 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 3 and 1000."
  }
}

variable "signal_retention_seconds" {
  description = "How long the signal queue keeps a message (it must cover an outage of the Graph API or a token)."
  type        = number
  default     = 345600

  validation {
    condition     = var.signal_retention_seconds >= 3600 && var.signal_retention_seconds <= 1209600
    error_message = "signal_retention_seconds must be between 3600 and 1209600."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "log_level" {
  description = "Application log level of both functions."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

variable "api_throttling_burst_limit" {
  description = "API Gateway stage burst limit (requests)."
  type        = number
  default     = 500

  validation {
    condition     = var.api_throttling_burst_limit >= 1
    error_message = "api_throttling_burst_limit must be positive."
  }
}

variable "api_throttling_rate_limit" {
  description = "API Gateway stage steady rate limit (requests per second)."
  type        = number
  default     = 200

  validation {
    condition     = var.api_throttling_rate_limit >= 1
    error_message = "api_throttling_rate_limit must be positive."
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
}

variable "oldest_signal_alarm_seconds" {
  description = "Alarm when the oldest signal has waited longer than this."
  type        = number
  default     = 900

  validation {
    condition     = var.oldest_signal_alarm_seconds >= 60
    error_message = "oldest_signal_alarm_seconds must be at least 60."
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

variable "graph_timeout_seconds" {
  description = "Timeout of one Graph API request."
  type        = number
  default     = 10

  validation {
    condition     = var.graph_timeout_seconds >= 1 && var.graph_timeout_seconds <= 60
    error_message = "graph_timeout_seconds must be between 1 and 60."
  }
}

variable "secret_ttl_seconds" {
  description = "How long the functions reuse a secret value before reading it again."
  type        = number
  default     = 300

  validation {
    condition     = var.secret_ttl_seconds >= 0 && var.secret_ttl_seconds <= 86400
    error_message = "secret_ttl_seconds must be between 0 and 86400."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' EMF metrics."
  type        = string
  default     = "wacapi"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_.-]{1,255}$", var.metrics_namespace))
    error_message = "metrics_namespace must be a valid CloudWatch namespace."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
