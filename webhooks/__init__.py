"""Webhook receivers for git providers: verify, record, request a sync."""
