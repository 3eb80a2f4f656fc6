# One on-demand table: clicks (by hashed user) and the sent-ledger (by event id), every item with
# a TTL in `expires_at`.

resource "aws_dynamodb_table" "main" {
  #checkov:skip=CKV_AWS_119:Items hold hashed user keys, click ids and event ids only; encryption at rest with the AWS-managed key avoids a KMS permission and per-request KMS cost.
  name         = var.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = true
}
