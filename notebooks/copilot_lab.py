"""What the notebooks share: the copilot opened in-process on its own key prefix, and two offline drawings.

`open_lab(name)` starts the embedded Redis Stack unless REDIS_URL is set (and `Lab.close()` stops it again
if it started it), keeps everything under `{redis.prefix}nb:{name}:` (cleared at open and at close, so a
notebook never touches your sessions or paper account), and runs the copilot on the shared XAUUSD history
at a fixed moment with a clock that moves only when told. The model is a scripted one unless
`COPILOT_NOTEBOOK_MODEL=ollama`, which uses ChatOllama from the usual settings (LLM__MODEL, LLM__BASE_URL).

The drawings use matplotlib only: no web rendering service, no browser, no system package.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # figures are turned into PNG outputs explicitly (see png)

import matplotlib.pyplot as plt  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from config import Settings, load_settings  # noqa: E402
from graph.copilot import Copilot  # noqa: E402
from tools.redis_embedded import EmbeddedRedis  # noqa: E402
from tools.market.clock import ManualClock  # noqa: E402
from tools.services import Services, build_services  # noqa: E402

# A moment of the shared history where the technical engine is confident (LONG, 75 %, AMD markup).
MOMENT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
USER = "notebook"


@dataclass
class Lab:
    settings: Settings
    redis: aioredis.Redis
    services: Services
    copilot: Copilot
    clock: ManualClock
    started_redis: EmbeddedRedis | None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def prefix(self) -> str:
        return self.settings.redis.prefix

    async def keys(self) -> list[str]:
        return sorted([k async for k in self.redis.scan_iter(match=f"{self.prefix}*", count=1000)])

    async def footprint(self) -> tuple[int, int]:
        """(number of keys, bytes Redis reports for them) under this notebook's prefix."""
        keys = await self.keys()
        sizes = [await self.redis.memory_usage(k) or 0 for k in keys]
        return len(keys), int(sum(sizes))

    async def close(self) -> None:
        """Forget this notebook's keys, close the copilot, and stop Redis if this notebook started it."""
        await forget(self.redis, self.prefix)
        await self.stack.aclose()
        await self.services.aclose()
        await self.redis.aclose()
        if self.started_redis is not None:
            self.started_redis.stop()
            print("stopped the embedded Redis this notebook started")


async def forget(redis: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    for start in range(0, len(keys), 500):
        await redis.delete(*keys[start : start + 500])


def scripted_or_ollama(replies: list[Any]) -> Any:
    """The scripted model with `replies`, or None (= ChatOllama from settings) when asked for Ollama."""
    if os.environ.get("COPILOT_NOTEBOOK_MODEL", "").lower() == "ollama":
        return None
    from graph.model.fake import ScriptedChatModel

    return ScriptedChatModel(replies=replies)


async def open_lab(name: str, replies: list[Any] | None = None, **overrides: Any) -> Lab:
    """The copilot for notebook `name`; `overrides` are settings sections, e.g. risk={"min_confidence": 0}."""
    base = load_settings()
    server = None
    if base.embedded_redis:
        embedded = EmbeddedRedis(
            port=base.redis.port, data_dir=ROOT / base.redis.data_dir, bind=base.redis.host
        )
        server = embedded if embedded.start() else None
    prefix = f"{base.redis.prefix}nb:{name}:"
    data = base.model_dump()
    for section, values in overrides.items():
        data[section] = {**data[section], **values}
    data.update(
        redis_url=base.effective_redis_url,
        redis={**data["redis"], "prefix": prefix},
        data_dir=str(ROOT / base.data_dir),
        fallback_data_dir=str(ROOT / base.fallback_data_dir),
        logging={**data["logging"], "file": None},
    )
    settings = load_settings(**data)
    redis = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
    await forget(redis, prefix)  # a re-run starts from nothing
    clock = ManualClock(MOMENT)
    services = await build_services(settings, redis, clock)
    lab = Lab(settings, redis, services, None, clock, server)  # type: ignore[arg-type]
    model = scripted_or_ollama(replies or ["(scripted model) Done."])
    lab.copilot = await lab.stack.enter_async_context(
        Copilot.open(settings, services=services, chat_model=model)
    )
    moment = f"{clock.now():%Y-%m-%d %H:%M} UTC"
    print(f"Redis {settings.effective_redis_url}, prefix {prefix!r}, market time {moment}")
    return lab


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (the notebooks show them with IPython.display.Image: an image output)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _ranks(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Breadth-first distance from __start__; __end__ goes last."""
    rank = {"__start__": 0}
    frontier = ["__start__"]
    while frontier:
        following = []
        for node in frontier:
            for source, target in edges:
                if source == node and target not in rank:
                    rank[target] = rank[node] + 1
                    following.append(target)
        frontier = following
    last = max((r for n, r in rank.items() if n != "__end__"), default=0) + 1
    for node in nodes:
        rank.setdefault(node, last)
    rank["__end__"] = max(r for n, r in rank.items() if n != "__end__") + 1
    return rank


def draw_graph(graph: Any) -> Figure:
    """The compiled graph's nodes and edges (get_graph()) laid out top-down; conditional edges dashed."""
    drawable = graph.get_graph()
    nodes = list(drawable.nodes)
    edges = [(e.source, e.target, e.conditional) for e in drawable.edges]
    rank = _ranks(nodes, [(s, t) for s, t, _ in edges])
    rows: dict[int, list[str]] = {}
    for node in nodes:
        rows.setdefault(rank[node], []).append(node)
    where = {}
    for r, row in rows.items():
        for i, node in enumerate(row):
            where[node] = ((i - (len(row) - 1) / 2) * 3.2, -r * 1.6)
    fig, ax = plt.subplots(figsize=(9, 1.5 * len(rows) + 1))
    for source, target, conditional in edges:
        (x0, y0), (x1, y1) = where[source], where[target]
        back = rank[target] <= rank[source]
        ax.annotate(
            "",
            xy=(x1, y1 + (0.28 if not back else -0.28)),
            xytext=(x0, y0 + (-0.28 if not back else 0.28)),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#b45309" if back else "#334155",
                "linestyle": "--" if conditional else "-",
                "connectionstyle": f"arc3,rad={0.45 if back else 0.08}",
                "shrinkA": 2,
                "shrinkB": 2,
            },
        )
    for node, (x, y) in where.items():
        special = node in ("__start__", "__end__")
        ax.add_patch(
            FancyBboxPatch(
                (x - 1.1, y - 0.28),
                2.2,
                0.56,
                boxstyle="round,pad=0.02,rounding_size=0.2",
                facecolor="#e2e8f0" if special else "#dbeafe",
                edgecolor="#1e3a8a",
            )
        )
        ax.text(x, y, node.strip("_") if special else node, ha="center", va="center", fontsize=11)
    xs = [x for x, _ in where.values()]
    ys = [y for _, y in where.values()]
    ax.set_xlim(min(xs) - 2.5, max(xs) + 2.5)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_axis_off()
    ax.set_title("copilot graph (solid: always, dashed: conditional, orange: back to an earlier node)")
    return fig


def draw_candles(
    bars: list[Any], levels: dict[str, float], fills: list[dict[str, str]], title: str
) -> Figure:
    """OHLC candles, horizontal signal levels (entry / SL / TP) and the paper fills as markers."""
    import matplotlib.dates as mdates

    fig, ax = plt.subplots(figsize=(11, 5))
    width = (mdates.date2num(bars[1].time) - mdates.date2num(bars[0].time)) * 0.7 if len(bars) > 1 else 0.01
    for bar in bars:
        x = mdates.date2num(bar.time)
        color = "#15803d" if bar.close >= bar.open else "#b91c1c"
        ax.vlines(x, bar.low, bar.high, color=color, linewidth=1)
        bottom, height = min(bar.open, bar.close), abs(bar.close - bar.open) or 0.01
        ax.add_patch(plt.Rectangle((x - width / 2, bottom), width, height, color=color))
    styles = {"entry": "#1d4ed8", "stop_loss": "#b91c1c", "take_profit": "#15803d"}
    for name, price in levels.items():
        ax.axhline(price, color=styles.get(name, "#64748b"), linestyle="--", linewidth=1)
        ax.annotate(f"{name} {price:.2f}", (mdates.date2num(bars[0].time), price), fontsize=9, va="bottom")
    for fill in fills:
        x = mdates.date2num(datetime.fromisoformat(fill["time"]))
        opening = fill["kind"] == "open"
        marker = "^" if (fill["side"] == "BUY") == opening else "v"
        ax.scatter([x], [float(fill["price"])], marker=marker, s=140, color="black", zorder=5)
        price = float(fill["price"])
        ax.annotate(f" {fill['kind']} #{fill['ticket']} @ {price:.2f}", (x, price))
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.set_title(title)
    ax.set_ylabel("price (USD)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig
