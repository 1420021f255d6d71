"""Resampling a bar series to a coarser UTC-aligned timeframe; gaps stay gaps (no synthetic bars)."""

from __future__ import annotations

import numpy as np

from tools.market.csv_formats import Ohlcv


def resample(series: Ohlcv, start: int, stop: int, bucket_seconds: int) -> Ohlcv:
    """Aggregate series[start:stop] into buckets aligned on multiples of `bucket_seconds` since the epoch.

    Epoch alignment gives 1d bars at UTC midnight and 4h bars at 00/04/08/... UTC. A bucket with no
    source bar produces no output bar. The first/last bucket may be partial; the caller trims.
    """
    times = series.times[start:stop]
    if len(times) == 0:
        return Ohlcv.empty()
    buckets = times - times % bucket_seconds
    firsts = np.concatenate(([0], np.flatnonzero(np.diff(buckets)) + 1))
    lasts = np.concatenate((firsts[1:] - 1, [len(times) - 1]))
    return Ohlcv(
        times=buckets[firsts],
        open=series.open[start:stop][firsts],
        high=np.maximum.reduceat(series.high[start:stop], firsts),
        low=np.minimum.reduceat(series.low[start:stop], firsts),
        close=series.close[start:stop][lasts],
        volume=np.add.reduceat(series.volume[start:stop], firsts),
    )
