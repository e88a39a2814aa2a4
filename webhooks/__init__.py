"""Webhook receivers for git providers, and commit statuses sent back to them.

A push should start work at once, and the commit should show how it went. Receivers (`routes`, `receiver`,
`providers/`) verify a delivery's signature over the raw body, record it (deduplicated by the database), and ask for a
sync of the repository — the same sync the poller runs, so a webhook and a poll for one commit make one run. Nothing a
payload says is trusted: the sync fetches from the remote, and the payload's commit is checked against what it found.
Notifiers (`notifiers/`) follow the controller's events and set commit statuses, off the engine's path. docs/webhooks.md
is the user's guide.
"""
