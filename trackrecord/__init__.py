"""The foundation: configuration, database, Redis and RQ plumbing, logging and migrations.

It imports none of the layers above it (ledger, connectors, workers, webhook_app, cli)."""
