# One on-demand table: clicks (by hashed user) and the sent-ledger (by event id), every item with
# a TTL in `expires_at`.

resource "aws_dynamodb_table" "main" {
  #checkov:skip=CKV_AWS_119:Items hold hashed user keys, click ids and event ids only; the AWS-managed key (below) serves, a customer-managed one would add a key policy to keep without a second reader to separate.
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

  # Enabled without a key ARN: the AWS-managed key aws/dynamodb (KMS-billed), rather than the
  # DynamoDB-owned default key.
  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.deletion_protection
  tags                        = local.tags
}
