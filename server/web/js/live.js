// The live feed (GET /api/events): quotes and market time in the header, P&L, fills, SL/TP closes and
// alerts, with no action from the trader. Reconnects with Last-Event-ID, so nothing is missed meanwhile.
import { streamEvents } from "./api.js";
import { addNotice } from "./chat.js";
import { $ } from "./dom.js";
import { fmtPrice, marketTime, signedMoney } from "./format.js";
import { emit, store } from "./store.js";
import { renderPortfolio } from "./panels.js";

let lastId = null;
let controller = null;
let generation = 0;

function onMarket(q) {
  store.quote = q;
  $("bid").textContent = fmtPrice(q.symbol, q.bid);
  $("ask").textContent = fmtPrice(q.symbol, q.ask);
  $("market-time").textContent = marketTime(q.now);
  $("market-time").dataset.now = q.now;
  emit("market", q);
}

function onFill(f) {
  const price = fmtPrice(f.symbol, Number(f.price));
  if (f.kind === "sl" || f.kind === "tp") {
    const what = f.kind === "sl" ? "stop loss" : "take profit";
    addNotice(`Position #${f.ticket} (${f.side} ${f.lots} ${f.symbol}) closed by its ${what} at ${price}: ${signedMoney(Number(f.pnl_usd))}.`,
      f.kind === "sl" ? "loss" : "win");
  }
  emit("fill", f);
  if (f.kind !== "open") emit("closed", f);
}

function onAlert(a) {
  addNotice(`Alert: ${a.symbol} ${a.condition} ${fmtPrice(a.symbol, a.price)} reached (${fmtPrice(a.symbol, a.triggered_price)})${a.message ? `: ${a.message}` : ""}.`, "alert");
  emit("alert", a);
}

const HANDLERS = {
  market: onMarket,
  portfolio: renderPortfolio,
  fill: onFill,
  alert: onAlert,
  problem: (d) => { $("live").textContent = d.message; $("live").className = "pill bad"; },
};

export async function startLive() {
  const mine = ++generation;
  if (controller) controller.abort();
  for (;;) {
    controller = new AbortController();
    try {
      await streamEvents("GET", `/api/events?symbol=${encodeURIComponent(store.symbol)}`, null, (name, data, id) => {
        if (id) lastId = id;
        $("live").textContent = "live";
        $("live").className = "pill ok";
        (HANDLERS[name] || (() => {}))(data);
      }, { signal: controller.signal, lastEventId: lastId });
    } catch (err) {
      if (mine !== generation) return; // restarted (another symbol)
      $("live").textContent = err.status === 401 ? "key needed" : "reconnecting…";
      $("live").className = "pill bad";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    if (mine !== generation) return;
  }
}

