"""Bounces and complaints: the return path, every intake, one classifier and one policy.

- ``models``: the events kept per address and the messages nobody could read.
- ``classify``: a raw message → what it reports (DSN, ARF, auto-reply, …).
- intake modules turn each path (files, LMTP, mailbox, API, provider webhooks, our own 5xx
  replies) into the same call of the policy.
"""
