"""Connectors: platform payloads (GitHub, Jira) become domain events for the ledger."""
