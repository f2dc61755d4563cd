"""Job stores: SQLite (embedded) and DynamoDB (deployed), behind one contract."""
