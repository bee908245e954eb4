"""GitHub connector: webhook payloads (issues, pull requests, milestones, comments) → domain events.

The entry point is `connectors.github.normalize.normalize(event, payload)`.
"""
