"""Learner mail: the messages notify owes learners (credential issued, its status changed,
a sign-in link) and their delivery over SMTP with retries and dead letters.

domain.py    what each message says, in English or French; the retry delay (pure)
handlers.py  the Kafka batch handlers that owe a message (rows in `notifications`)
delivery.py  the worker that sends due messages and records each outcome
smtp.py      a pool of SMTP connections
models.py    the `notifications` table
lifecycle.py the SMTP pool and the delivery worker, started and stopped with the process
settings.py  its settings, mixed into notify's
"""
