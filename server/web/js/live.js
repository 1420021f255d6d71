// The live feed (GET /api/events): quotes and market time in the header, P&L, fills, SL/TP closes and
// alerts, with no action from the trader. Each fill and alert carries its id in the account's notice stream;
// the page reconnects with the last id it saw (Last-Event-ID), so each is shown once and none is missed.
import { streamEvents } from "./api.js";
import { addNotice } from "./chat.js";
import { $ } from "./dom.js";
import { fmtPrice, marketTime, signedMoney } from "./format.js";
import { emit, store } from "./store.js";
import { renderPortfolio } from "./panels.js";

let lastId = null; // the position in the account's notice stream, sent back as Last-Event-ID
const shown = new Set(); // ids of the notices this page has handled: each is shown once
let controller = null;
let generation = 0;

function onMarket(q) {
  if (q.available === false) { // no current quote for this symbol: said once; the notices keep coming
    store.quote = null;
    $("bid").textContent = "—";
    $("ask").textContent = "—";
    $("live").textContent = `no ${q.symbol} price`;
    $("live").title = q.reason;
    $("live").className = "pill warn";
  } else {
    store.quote = q;
    $("bid").textContent = fmtPrice(q.symbol, q.bid);
    $("ask").textContent = fmtPrice(q.symbol, q.ask);
    $("live").textContent = "live";
    $("live").title = "live prices and P&L";
    $("live").className = "pill ok";
  }
  $("market-time").textContent = marketTime(q.now);
  $("market-time").dataset.now = q.now;
  emit("market", q);
}

function onFill(f, id) {
  const price = fmtPrice(f.symbol, Number(f.price));
  if (f.kind === "sl" || f.kind === "tp") {
    const what = f.kind === "sl" ? "stop loss" : "take profit";
    addNotice(`Position #${f.ticket} (${f.side} ${f.lots} ${f.symbol}) closed by its ${what} at ${price}: ${signedMoney(Number(f.pnl_usd))}.`,
      f.kind === "sl" ? "loss" : "win", id);
  }
  emit("fill", f);
  if (f.kind !== "open") emit("closed", f);
}

function onAlert(a, id) {
  addNotice(`Alert: ${a.symbol} ${a.condition} ${fmtPrice(a.symbol, a.price)} reached (${fmtPrice(a.symbol, a.triggered_price)})${a.message ? `: ${a.message}` : ""}.`, "alert", id);
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
        if (!name) return; // the stream's opening position
        if (name === "fill" || name === "alert") {
          if (shown.has(id)) return;
          shown.add(id);
        }
        (HANDLERS[name] || (() => {}))(data, id);
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

