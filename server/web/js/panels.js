// The account panel (balance, equity, positions with live P&L) and the history panel (closed trades,
// equity curve, daily and weekly figures).
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { duration, fmtPrice, money, profitClass, signedMoney } from "./format.js";
import { emit, on, store } from "./store.js";

export function renderPortfolio(p) {
  store.portfolio = p;
  const kv = el("div", { class: "kv" },
    el("span", {}, "Balance"), el("span", {}, money(p.balance)),
    el("span", {}, "Equity"), el("span", { "data-testid": "equity" }, money(p.equity)),
    el("span", {}, "Margin"), el("span", {}, money(p.margin)),
    el("span", {}, "Free margin"), el("span", {}, money(p.free_margin)),
    el("span", {}, "Today"), el("span", { class: profitClass(p.daily_pnl) }, signedMoney(p.daily_pnl)),
    el("span", {}, "This week"), el("span", { class: profitClass(p.weekly_pnl) }, signedMoney(p.weekly_pnl)));
  const positions = (p.positions || []).map((pos) => el("div", { class: "position", "data-testid": "position", "data-ticket": pos.ticket },
    el("div", {}, el("b", { class: pos.type }, pos.type), ` ${pos.size} ${pos.symbol} #${pos.ticket}`),
    el("div", {}, `open ${fmtPrice(pos.symbol, pos.open_price)} · now ${fmtPrice(pos.symbol, pos.current_price)}`),
    el("div", {}, `SL ${fmtPrice(pos.symbol, pos.stop_loss)} · TP ${fmtPrice(pos.symbol, pos.take_profit)}`),
    el("div", { class: `pnl ${profitClass(pos.profit)}`, "data-testid": "position-pnl" }, `P&L ${signedMoney(pos.profit)}`)));
  $("portfolio").replaceChildren(kv, el("h2", {}, `Positions (${positions.length})`),
    positions.length ? el("div", {}, positions) : el("div", { class: "msg note" }, "no open positions"));
  emit("portfolio", p);
}

export async function loadPortfolio() {
  try {
    renderPortfolio(await api("GET", "/api/portfolio"));
  } catch (err) {
    $("portfolio").textContent = err.message;
  }
}

const REASON = { sl: "SL", tp: "TP", manual: "manual" };

function equitySvg(points) {
  if (points.length < 2) return el("p", { class: "msg note" }, "The equity curve starts with the first closed trade.");
  const w = 280;
  const h = 80;
  const xs = points.map((p) => p.time);
  const ys = points.map((p) => p.balance_usd);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => ((x - x0) / (x1 - x0 || 1)) * (w - 4) + 2;
  const sy = (y) => h - 2 - ((y - y0) / (y1 - y0 || 1)) * (h - 4);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "equity");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `balance from ${money(ys[0])} to ${money(ys[ys.length - 1])}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.map((p) => `${sx(p.time).toFixed(1)},${sy(p.balance_usd).toFixed(1)}`).join(" "));
  line.setAttribute("class", ys[ys.length - 1] >= ys[0] ? "up" : "down");
  svg.append(line);
  return svg;
}

function periodTable(label, rows) {
  return el("table", { class: "periods" },
    el("caption", {}, label),
    el("tr", {}, el("th", {}, "from"), el("th", {}, "trades"), el("th", {}, "won"), el("th", {}, "P&L")),
    rows.slice(0, 7).map((r) => el("tr", {}, el("td", {}, r.start), el("td", {}, r.trades), el("td", {}, `${r.wins}/${r.trades}`),
      el("td", { class: profitClass(r.pnl_usd) }, signedMoney(r.pnl_usd)))));
}

export async function loadHistory() {
  let trades;
  let perf;
  try {
    [trades, perf] = await Promise.all([api("GET", "/api/trades"), api("GET", "/api/performance")]);
  } catch (err) {
    $("history").textContent = err.message;
    return;
  }
  const summary = el("div", { class: "kv" },
    el("span", {}, "Closed trades"), el("span", { "data-testid": "closed-count" }, perf.trades),
    el("span", {}, "Win rate"), el("span", {}, perf.win_rate_pct === null ? "—" : `${perf.win_rate_pct}%`),
    el("span", {}, "Realized P&L"), el("span", { class: profitClass(perf.pnl_usd) }, signedMoney(perf.pnl_usd)));
  const list = trades.trades.map((t) => el("tr", { "data-testid": "closed-trade", "data-ticket": t.ticket },
    el("td", {}, `#${t.ticket} `, el("b", { class: t.side }, t.side), ` ${t.lots} ${t.symbol}`),
    el("td", { class: profitClass(t.pnl_usd) }, signedMoney(t.pnl_usd)),
    el("td", {}, duration(t.duration_seconds)),
    el("td", {}, el("span", { class: `reason ${t.reason}` }, REASON[t.reason] || t.reason))));
  $("history").replaceChildren(...[summary,
    el("h2", {}, "Equity (balance after each close)"), equitySvg(perf.equity),
    el("h2", {}, `Closed trades (${trades.trades.length})`),
    list.length
      ? el("table", { class: "trades" }, el("tr", {}, el("th", {}, "trade"), el("th", {}, "P&L"), el("th", {}, "held"), el("th", {}, "exit")), list)
      : el("p", { class: "msg note" }, "no closed trades yet"),
    perf.daily.length ? periodTable("Daily", perf.daily) : null,
    perf.weekly.length ? periodTable("Weekly", perf.weekly) : null].filter(Boolean));
}

export function initPanels() {
  $("refresh-portfolio").addEventListener("click", () => { loadPortfolio(); loadHistory(); });
  on("closed", loadHistory);
  on("run-finished", loadPortfolio);
  loadPortfolio();
  loadHistory();
}
