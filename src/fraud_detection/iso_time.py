"""ISO 8601 timestamps as the project's inputs write them, parsed alike on every Python it claims (3.10's
``datetime.fromisoformat`` takes neither ``Z`` nor a fraction of other than 3 or 6 digits; 3.11's does)."""

from __future__ import annotations

import re
from datetime import datetime

_ISO = re.compile(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,6}))?)?(Z|[+-]\d\d:?\d\d)?")


def parse_iso(text: str) -> datetime:
    """``YYYY-MM-DD``, with an optional ``[T ]HH:MM[:SS[.f...]]`` and ``Z`` or ``±HH[:]MM``; aware when it
    names a zone. Raises ValueError for anything else."""
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 date and time: {text!r}")
    date, clock, fraction, zone = match.groups()
    if zone is not None:
        zone = "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[-2:]}"
    return datetime.fromisoformat(f"{date}T{clock or '00:00'}{'.' + fraction.ljust(6, '0') if fraction else ''}"
                                  f"{zone or ''}")
