"""How often the loop refreshes the derived statistics (rolling moments, window statistics,
history, forecasts): never per event, paced by what a refresh costs."""

from __future__ import annotations

__all__ = ["REFRESH_COST_FACTOR", "REFRESH_INTERVAL", "refresh_interval"]

#: Seconds between refreshes of derived statistics while records keep arriving.
REFRESH_INTERVAL = 1.0
#: Wait at least this many times the last refresh's duration before the next one, so that
#: refreshing (O(cells): 0.1 s at 100,000 cells) takes at most about 5% of the loop, the
#: share checkpoint rounds get (:data:`tilewatch.streams.commit.CHECKPOINT_SHARE`);
#: after an empty poll too (reading a backlog, a fetch that has not arrived yet is one, many
#: times a second), but then never longer than :data:`REFRESH_INTERVAL`. Scrapes do not
#: depend on it for their rolling statistics (a snapshot merges what is not refreshed yet);
#: it paces the window statistics' cache and the history.
REFRESH_COST_FACTOR = 20.0


def refresh_interval(last_refresh_seconds: float, idle: bool) -> float:
    """Seconds to wait after a refresh that took ``last_refresh_seconds`` before the next one,
    after a poll that returned records or, with ``idle``, none.

    Examples
    --------
    >>> refresh_interval(0.002, idle=False), refresh_interval(0.002, idle=True)  # 100 cells
    (1.0, 0.04)
    >>> refresh_interval(0.3, idle=False), refresh_interval(0.3, idle=True)  # 100k, drift
    (6.0, 1.0)
    """
    paced = REFRESH_COST_FACTOR * last_refresh_seconds
    return min(REFRESH_INTERVAL, paced) if idle else max(REFRESH_INTERVAL, paced)
