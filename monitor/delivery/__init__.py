"""Alert delivery to automakers: signed webhooks sent from a durable outbox in the history store.

`webhooks` reads the MONITOR_WEBHOOKS file and signs; `outbox` enqueues (with each stored
alert transition), claims and settles deliveries; `deliverer` sends them, retrying with
back-off; `settings` holds the MONITOR_WEBHOOK_* settings.
"""
