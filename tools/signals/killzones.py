"""ICT killzones: the New York-time windows where institutional liquidity tends to arrive."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

# Half-open windows [start, end) in New York local time, so DST shifts move them in UTC automatically.
KILLZONES: tuple[tuple[str, time, time], ...] = (
    ("london_open", time(2, 0), time(5, 0)),
    ("ny_am", time(8, 30), time(11, 0)),
)


def killzone_at(moment: datetime) -> str:
    """ "london_open", "ny_am" or "none" for a timezone-aware moment."""
    if moment.tzinfo is None:
        raise ValueError("killzone_at needs a timezone-aware datetime")
    local = moment.astimezone(NEW_YORK).time()
    for name, start, end in KILLZONES:
        if start <= local < end:
            return name
    return "none"
