"""Employer feed: employers register and an operator approves them; each subscribes with
filters and optionally a webhook endpoint; notify keeps its own projection of credentials
and of who may see them, and tells each employer what it may see, through a pull feed and
signed webhooks with retries; operators audit and replay deliveries.

domain.py         the rules, pure: privacy (visible_to), filters, share/unshare transitions,
                  retry schedule and endpoint disabling, token buckets, cursors, endpoint
                  URLs, the API key format, what the employer directory tells
models.py         the tables
handlers.py       the Kafka batch handlers (issued, visibility, status) over projection.py
projection.py     the projection rows and the effects of one batch (events, deliveries)
employers.py      registration, approval, suspension, renaming; API key verification
subscriptions.py  an employer's subscriptions and webhook endpoints
feed.py           the pull feed (cursor order, rate limit)
webhooks.py       the delivery worker: privacy re-check, rate limit, signed send, retries
crypto.py         Standard Webhooks signatures; endpoint secrets encrypted at rest
audit.py          the operator's delivery audit and replays
ratelimit.py      per-employer token buckets shared by every instance
routes.py         the HTTP routes, thin
lifecycle.py      the long-lived parts (secret box, limiter, key verifier, webhook worker)
settings.py       its settings, mixed into notify's
"""
