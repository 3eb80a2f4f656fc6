variable "region" {
  description = "AWS region; null takes AWS_REGION (or the profile's region)."
  type        = string
  default     = null
}

variable "name" {
  description = "Prefix of every resource name (3-32 lowercase letters, digits or dashes)."
  type        = string
  default     = "wacapi"
}

variable "architecture" {
  description = "x86_64, or arm64 for binaries built with WACAPI_TARGET=aarch64-unknown-linux-gnu.2.34."
  type        = string
  default     = "x86_64"
}

variable "rules_file" {
  description = "Your rules and accounts file (required): a copy of examples/wacapi.toml with your own account and dataset ids. The module refuses the example's made-up datasets at plan time."
  type        = string
}

variable "detailed_metrics" {
  description = "Publish the dispatcher's breakdowns by event name, rule and match key (about $7.50 a month more in custom metrics); the conversion report has them either way."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "Email address that receives every alarm; null subscribes nobody."
  type        = string
  default     = null
}

variable "dispatch_max_concurrency" {
  description = "Most concurrent dispatch invocations."
  type        = number
  default     = 5
}

variable "dispatch_timeout_seconds" {
  description = "Timeout of the dispatch function."
  type        = number
  default     = 60
}

variable "graph_timeout_seconds" {
  description = "Timeout of one Graph API request (at least 5 s below dispatch_timeout_seconds)."
  type        = number
  default     = 10
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Log level of wacapi's own logs (libraries stay at INFO or above)."
  type        = string
  default     = "INFO"
}

variable "deletion_protection" {
  description = "Protect the DynamoDB table; false for test stacks."
  type        = bool
  default     = true
}

variable "secret_recovery_window_days" {
  description = "0 for test stacks (secrets deleted at once), else 7-30."
  type        = number
  default     = 7
}

variable "permissions_boundary" {
  description = "IAM policy ARN set as the permissions boundary of the function roles."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
