"""Jira connector: webhook payloads (issues, comments, versions, sprints) → domain events.

The entry point is `connectors.jira.normalize.normalize(payload)`.
"""
