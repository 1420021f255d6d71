// The trader's preferences (GET/PUT /api/preferences): the settings panel, and what a new session starts on.
// Private to the API key's user and kept by the server; `/prefs` in the chat changes the same values.
import { api } from "./api.js";
import { TIMEFRAMES } from "./chart.js";
import { $, el } from "./dom.js";
import { emit, on, store } from "./store.js";

const LANGUAGES = { auto: "auto (yours)", es: "español", en: "English" };
const NOTICES = { fills: "fills", closes: "SL/TP closes", alerts: "alerts", expiries: "expiring proposals" };

function form() { return $("prefs-form"); }

function status(text, kind = "") {
  const line = $("prefs-status");
  line.textContent = text;
  line.className = `prefs-status ${kind}`;
}

function options(select, values, labels = {}) {
  select.replaceChildren(...values.map((v) => el("option", { value: v }, labels[v] || v)));
}

function fill(p) {
  const f = form();
  f.elements.language.value = p.language;
  f.elements.symbol.value = p.symbol;
  f.elements.timeframe.value = p.timeframe;
  f.elements.risk_per_trade_pct.value = p.risk_per_trade_pct;
  for (const box of f.querySelectorAll("input[name=notify]")) box.checked = p.notify.includes(box.value);
}

// Only the fields the trader changed (the rest stay as stored).
function changes() {
  const f = form();
  const p = store.prefs || {};
  const out = {};
  for (const name of ["language", "symbol", "timeframe"]) if (f.elements[name].value !== p[name]) out[name] = f.elements[name].value;
  const risk = f.elements.risk_per_trade_pct.value;
  if (risk !== "" && Number(risk) !== p.risk_per_trade_pct) out.risk_per_trade_pct = Number(risk);
  const notify = [...f.querySelectorAll("input[name=notify]:checked")].map((b) => b.value);
  if (notify.join() !== (p.notify || []).join()) out.notify = notify;
  return out;
}

export async function loadPrefs() {
  try {
    store.prefs = await api("GET", "/api/preferences");
  } catch {
    return store.prefs || null;
  }
  fill(store.prefs);
  emit("prefs", store.prefs);
  return store.prefs;
}

async function save(ev) {
  ev.preventDefault();
  const body = changes();
  if (!Object.keys(body).length) { status("Nothing changed."); return; }
  try {
    store.prefs = await api("PUT", "/api/preferences", body);
    fill(store.prefs);
    emit("prefs", store.prefs);
    status("Saved. New sessions start on these; trades are sized with your risk.", "ok");
  } catch (err) {
    status(`Not saved: ${err.message}`, "bad");
  }
}

export function initPrefs() {
  const f = form();
  options(f.elements.language, Object.keys(LANGUAGES), LANGUAGES);
  options(f.elements.symbol, Object.keys(store.specs));
  options(f.elements.timeframe, TIMEFRAMES);
  const cap = store.limits ? store.limits.max_risk_per_trade_pct : null;
  if (cap !== null) {
    f.elements.risk_per_trade_pct.max = String(cap);
    $("prefs-cap").textContent = `cap ${cap} %`;
  }
  $("prefs-notify").replaceChildren(...Object.entries(NOTICES).map(([value, label]) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "notify", value }), ` ${label}`)));
  f.addEventListener("submit", save);
  on("run-finished", loadPrefs); // `/prefs …` typed in the chat changes them too
  if (store.prefs) fill(store.prefs);
}
