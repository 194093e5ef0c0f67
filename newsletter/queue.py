"""The queue seam: services say which work should happen next, by actor name and ids.

Only this module and ``broker.py`` know Dramatiq; services never import ``tasks.py`` (whose
actors import the services), so the import graph has no cycle. A message carries ids only:
the database says what is left to do, and losing a message loses no work.
"""

from __future__ import annotations

import dramatiq


def enqueue(actor_name: str, *args: int, delay_ms: int | None = None) -> None:
    """Queue one job for the actor named ``actor_name`` (after ``delay_ms``, when given).

    :raises dramatiq.errors.ActorNotFound: no actor of that name is declared on the broker.
    """
    actor = dramatiq.get_broker().get_actor(actor_name)
    if delay_ms is None:
        actor.send(*args)
    else:
        actor.send_with_options(args=args, delay=delay_ms)
