// The session symbol's candles (TradingView Lightweight Charts, vendored), with the pending proposal's
// entry/SL/TP (moving while the trader edits them), open positions' levels, fill markers and signal levels.
import {
  CandlestickSeries, LineStyle, createChart, createSeriesMarkers,
} from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { emit, on, store } from "./store.js";

export const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"];
const SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };
const COLORS = { entry: "#5b9cf5", sl: "#ff6b6b", tp: "#4fd18b", position: "#c3a6ff", signal: "#8a96a8" };

const view = { chart: null, series: null, markers: null, timeframe: "15m", lines: new Map(), lastBar: null,
  bars: [], trades: [], loading: null };

function setLine(id, price, color, title, style = LineStyle.Solid) {
  const existing = view.lines.get(id);
  if (!(Number(price) > 0)) {
    if (existing) view.series.removePriceLine(existing.line);
    view.lines.delete(id);
    return;
  }
  const options = { price: Number(price), color, title, lineWidth: style === LineStyle.Solid ? 2 : 1,
    lineStyle: style, axisLabelVisible: true };
  if (existing) existing.line.applyOptions(options);
  else view.lines.set(id, { line: view.series.createPriceLine(options) });
  view.lines.get(id).options = options;
}

function clearLines(prefix) {
  for (const id of [...view.lines.keys()]) if (id.startsWith(prefix)) setLine(id, null);
}

// The pending proposal's levels: called with the card's current (possibly edited) values.
export function showProposal(p) {
  if (!view.series) return;
  clearLines("proposal:");
  if (!p || p.symbol !== store.symbol) return;
  if (p.kind !== "close") {
    setLine("proposal:entry", p.entry_price, COLORS.entry, `${p.side} ${p.size_lots ?? ""}`.trim());
    setLine("proposal:sl", p.stop_loss, COLORS.sl, "SL");
    setLine("proposal:tp", p.take_profit, COLORS.tp, "TP");
  } else {
    setLine("proposal:entry", p.entry_price, COLORS.entry, `close #${p.ticket}`);
  }
}

function showPositions(portfolio) {
  clearLines("position:");
  for (const pos of (portfolio && portfolio.positions) || []) {
    if (pos.symbol !== store.symbol) continue;
    setLine(`position:${pos.ticket}:open`, pos.open_price, COLORS.position, `#${pos.ticket} ${pos.type}`, LineStyle.Dotted);
    setLine(`position:${pos.ticket}:sl`, pos.stop_loss, COLORS.sl, `#${pos.ticket} SL`, LineStyle.Dotted);
    setLine(`position:${pos.ticket}:tp`, pos.take_profit, COLORS.tp, `#${pos.ticket} TP`, LineStyle.Dotted);
  }
  updateMarkers();
}

function showSignal(signal) {
  clearLines("signal:");
  const legend = $("chart-legend");
  if (!signal || signal.symbol !== store.symbol) { legend.textContent = ""; return; }
  const dashed = LineStyle.LargeDashed;
  if (signal.action !== "HOLD") {
    setLine("signal:sl", signal.stop_loss, COLORS.signal, `sig ${signal.timeframe} SL`, dashed);
    setLine("signal:tp", signal.take_profit, COLORS.signal, `sig ${signal.timeframe} TP`, dashed);
  }
  legend.replaceChildren(`Signal ${signal.timeframe}: `,
    el("b", { class: signal.action.toLowerCase() }, signal.action),
    ` ${Math.round((signal.confidence || 0) * 100)}% · ${signal.amd_phase}`);
}

const barTime = (iso) => {
  const step = SECONDS[view.timeframe];
  return Math.floor(Date.parse(iso) / 1000 / step) * step;
};

// Opens and closes of closed trades and of open positions, on the bar they happened in.
function updateMarkers() {
  if (!view.markers) return;
  const first = view.bars.length ? view.bars[0].time : 0;
  const marks = [];
  const add = (iso, mark) => { const time = barTime(iso); if (time >= first) marks.push({ time, ...mark }); };
  for (const t of view.trades) {
    if (t.symbol !== store.symbol) continue;
    add(t.open_time, { position: t.side === "BUY" ? "belowBar" : "aboveBar", shape: t.side === "BUY" ? "arrowUp" : "arrowDown",
      color: COLORS.entry, text: `#${t.ticket}` });
    add(t.close_time, { position: "aboveBar", shape: "circle", color: t.pnl_usd < 0 ? COLORS.sl : COLORS.tp,
      text: t.reason === "manual" ? "close" : t.reason.toUpperCase() });
  }
  for (const pos of (store.portfolio && store.portfolio.positions) || []) {
    if (pos.symbol !== store.symbol || !pos.open_time) continue;
    add(pos.open_time, { position: pos.type === "BUY" ? "belowBar" : "aboveBar", shape: pos.type === "BUY" ? "arrowUp" : "arrowDown",
      color: COLORS.position, text: `#${pos.ticket}` });
  }
  marks.sort((a, b) => a.time - b.time);
  view.markers.setMarkers(marks);
}

export async function loadBars() {
  if (!view.series) return;
  const symbol = store.symbol;
  const tf = view.timeframe;
  const data = await api("GET", `/api/bars/${encodeURIComponent(symbol)}?timeframe=${tf}&bars=300`);
  if (symbol !== store.symbol || tf !== view.timeframe) return; // switched meanwhile
  const fresh = view.bars.length === 0;
  view.bars = data.bars;
  view.series.setData(data.bars);
  view.lastBar = data.bars.length ? data.bars[data.bars.length - 1].time : null;
  $("chart").dataset.bars = String(data.bars.length);
  $("chart").dataset.lastBar = String(view.lastBar || "");
  if (fresh) view.chart.timeScale().scrollToRealTime();
  updateMarkers();
  emit("bars", { symbol, timeframe: tf, count: data.bars.length, last: view.lastBar });
}

async function loadTrades() {
  try {
    view.trades = (await api("GET", "/api/trades")).trades;
  } catch {
    view.trades = [];
  }
  updateMarkers();
}

export async function loadSignal() {
  try {
    store.signal = await api("GET", `/api/signal/${encodeURIComponent(store.symbol)}`);
  } catch {
    store.signal = null;
  }
  showSignal(store.signal);
}

function timeframeButtons() {
  return TIMEFRAMES.map((tf) => el("button", {
    type: "button", class: tf === view.timeframe ? "tf active" : "tf", "data-tf": tf, "aria-pressed": String(tf === view.timeframe),
    onclick: () => setTimeframe(tf),
  }, tf));
}

export function setTimeframe(tf) {
  view.timeframe = tf;
  view.bars = [];
  $("timeframes").replaceChildren(...timeframeButtons());
  loadBars().catch(() => {});
}

// Test and debugging hook: the lines drawn now and where a price sits on the canvas.
function inspect() {
  return {
    timeframe: view.timeframe,
    bars: view.bars.length,
    lastClose: view.series.data().at(-1)?.close ?? null, // what is drawn, not what was fetched
    lines: [...view.lines.entries()].map(([id, l]) => ({ id, title: l.options.title, price: l.options.price })),
    y: (price) => view.series.priceToCoordinate(price),
  };
}

export function initChart() {
  const container = $("chart");
  view.chart = createChart(container, {
    autoSize: true,
    layout: { background: { color: "#0f1419" }, textColor: "#b8c2cf", attributionLogo: true },
    grid: { vertLines: { color: "#1b2430" }, horzLines: { color: "#1b2430" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#263040" },
    rightPriceScale: { borderColor: "#263040" },
    crosshair: { mode: 0 },
  });
  view.series = view.chart.addSeries(CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a", wickDownColor: "#ef5350", borderVisible: false,
  });
  view.markers = createSeriesMarkers(view.series, []);
  $("timeframes").replaceChildren(...timeframeButtons());
  window.copilotChart = inspect;

  on("proposal", showProposal);
  on("portfolio", showPositions);
  on("signal", showSignal);
  on("closed", loadTrades);
  on("symbol", () => {
    // Never leave the last symbol's candles under the new symbol's name while its bars load (or fail to).
    view.bars = [];
    view.series.setData([]);
    $("chart").dataset.bars = "0";
    clearLines("");
    loadBars().catch(() => {});
    loadSignal();
    showProposal(store.proposal);
    showPositions(store.portfolio);
  });
  // A new bar on the market clock: redraw the candles and the governing signal.
  on("market", (quote) => {
    if (quote.available === false) return; // no current quote for this symbol: nothing new to draw
    const t = barTime(quote.quote_time);
    if (view.lastBar !== null && t > view.lastBar && !view.loading) {
      view.loading = loadBars().then(loadSignal).catch(() => {}).finally(() => { view.loading = null; });
    }
  });
  loadBars().catch((err) => { $("chart-legend").textContent = `chart: ${err.message}`; });
  loadSignal();
  loadTrades();
}
