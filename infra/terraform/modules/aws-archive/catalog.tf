# The DynamoDB catalog: the fleet's index of what can be restored, where, and
# verified by whom. The schema is documented in infra/terraform/README.md
# ("Catalog schema"); the host shipper and both functions write it.
#
#   pk  "T#{tenant}#S#{server_id}"             one partition per tenant/server,
#                                              so IAM can bind a tenant with
#                                              dynamodb:LeadingKeys
#   sk  "B#{lineage}#{sequence:010d}#{YYYYMM}" a binlog (lineage 0: its plain key;
#                                              docs/catalog.md); sequences are key
#                                              ranges, so a plan reads them at once
#       "K#{backup_id}"                        a base backup
#   first_event_us (N)                         LSI sort key: "binlogs of T/S whose
#                                              first event is <= t" is a Query

resource "aws_dynamodb_table" "catalog" {
  name                        = "${var.name}-catalog"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "first_event_us"
    type = "N"
  }

  # Local, so it is strongly consistent with the table and shares the
  # partition key (and so the tenant's LeadingKeys condition). Backups carry no
  # first_event_us, so the index holds binlogs only.
  local_secondary_index {
    name            = "by_first_event"
    range_key       = "first_event_us"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.archive.arn
  }

  tags = var.tags
}
