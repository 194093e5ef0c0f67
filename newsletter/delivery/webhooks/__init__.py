"""Outgoing webhooks: events POSTed as signed JSON to the URLs an admin registers.

- ``models``: the endpoints, the outbox (one message per endpoint and event) and each
  attempt made to deliver a message (the delivery log).
- ``signing``: the Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``) and the ``whsec_`` secrets.
- ``outbox``: :func:`publish` writes the messages in the caller's transaction and queues
  their delivery once it commits (``newsletter.events`` is the door the domain uses).
- ``sender``: one POST, on public addresses only, no redirect followed, time and size capped.
- ``service``: delivering a message (with retries and backoff), the endpoints and the log.
"""
