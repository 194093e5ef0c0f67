"""The gate in front of every new subscriber made by the admin or the API.

The privacy work fills this in (erased addresses kept as keyed hashes, blocklisted domains
and addresses); until then it refuses nothing. Callers ask it before creating a subscriber
and show the reason it gives.
"""

from __future__ import annotations

from collections.abc import Collection


def refused(emails: Collection[str], *, via: str) -> dict[str, str]:
    """The addresses among ``emails`` that may not become subscribers, and why.

    :param emails: the addresses about to be created.
    :param via: who asks (``"admin"``, ``"api"``, ``"import"``, ``"form"``).
    :returns: lower-cased address → a reason to show; empty when every address may go on.
    """
    return {}
