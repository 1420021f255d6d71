// Trading Copilot web page: wiring of the modules, sessions, health, API key, panels and phone tabs.
// ES modules, no CDN: the chart library is vendored under /static/vendor, so the page works offline.
import { api } from "./api.js";
import { initChart, loadBars, loadSignal, setTimeframe } from "./chart.js";
import { addMessage, cancelRun, resetLog, sendMessage, setBusy, showApproval, showSignal } from "./chat.js";
import { $, el } from "./dom.js";
import { initPanels, loadHistory, loadPortfolio } from "./panels.js";
import { startLive } from "./live.js";
import { initPrefs, loadPrefs } from "./prefs.js";
import { emit, store } from "./store.js";

function newSessionId() {
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

async function loadSessions() {
  let list;
  try { list = (await api("GET", "/api/sessions")).sessions; } catch { return; }
  if (store.session && !list.includes(store.session)) list.unshift(store.session);
  $("sessions").replaceChildren(...list.map((s) => el("li", {},
    el("button", { type: "button", class: s === store.session ? "session active" : "session", title: s,
      "aria-current": s === store.session ? "true" : null, onclick: () => { openSession(s); showTab("chat"); } }, s))));
}

async function openSession(id) {
  store.session = id;
  localStorage.setItem("copilot.session", id);
  resetLog();
  $("session-title").textContent = `session ${id}`;
  loadSessions();
  let s;
  try { s = await api("GET", `/api/sessions/${encodeURIComponent(id)}`); } catch { return; } // a new session
  for (const m of s.messages || []) {
    if ((m.role === "user" || m.role === "assistant") && m.content) addMessage(m.role, m.content);
  }
  if (s.last_signal) showSignal(s.last_signal);
  if (s.pending_approval) showApproval(s.pending_approval);
}

async function loadHealth() {
  try {
    const h = await api("GET", "/api/health");
    $("health").textContent = h.status === "healthy" ? "healthy" : `${h.status}: model ${h.llm_status}`;
    $("health").title = `${h.status} · model ${h.llm_status} · redis ${h.redis_status}`;
    $("health").className = `pill ${h.status === "healthy" ? "ok" : "bad"}`;
  } catch {
    $("health").textContent = "server unreachable";
    $("health").className = "pill bad";
  }
}

// Phone layout: one panel at a time, chosen by the tab bar (desktop shows them all).
function showTab(name) {
  document.body.dataset.tab = name;
  for (const tab of document.querySelectorAll("#tabs button")) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  if (name === "history") loadHistory();
}

function setSymbol(symbol) {
  const name = symbol.trim().toUpperCase();
  if (!name || name === store.symbol || !store.specs[name]) return;
  store.symbol = name;
  localStorage.setItem("copilot.symbol", name);
  $("chart-symbol").textContent = name;
  emit("symbol", name);
  startLive();
}

// A new session starts on the trader's symbol and timeframe (their preferences).
function startOnPreferences() {
  if (!store.prefs) return;
  setSymbol(store.prefs.symbol);
  setTimeframe(store.prefs.timeframe);
}

function wire() {
  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("message").value.trim();
    if (!text) return;
    $("message").value = "";
    sendMessage(text);
  });
  $("stop").addEventListener("click", cancelRun);
  $("message").addEventListener("keydown", (ev) => { if (ev.key === "Escape" && store.busy) cancelRun(); });
  $("symbol").addEventListener("change", () => setSymbol($("symbol").value));
  $("new-session").addEventListener("click", () => { startOnPreferences(); openSession(newSessionId()); showTab("chat"); });
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem("copilot.apiKey", $("api-key").value.trim());
    $("key-form").hidden = true;
    init();
  });
  const tabs = [...document.querySelectorAll("#tabs button")];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
    tab.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      showTab(next.dataset.tab);
    });
  });
}

async function init() {
  try { store.specs = await api("GET", "/api/symbols"); } catch { store.specs = {}; }
  try { store.limits = await api("GET", "/api/limits"); } catch { store.limits = null; }
  const prefs = await loadPrefs();
  const fresh = !localStorage.getItem("copilot.session"); // a first visit starts a new session: on the preferences
  const saved = fresh && prefs && store.specs[prefs.symbol] ? prefs.symbol : localStorage.getItem("copilot.symbol");
  store.symbol = saved && store.specs[saved] ? saved : Object.keys(store.specs).includes("XAUUSD") ? "XAUUSD" : Object.keys(store.specs)[0] || "XAUUSD";
  $("symbol").replaceChildren(...Object.keys(store.specs).map((s) => el("option", { value: s, selected: s === store.symbol }, s)));
  $("chart-symbol").textContent = store.symbol;
  loadHealth();
  await openSession(localStorage.getItem("copilot.session") || newSessionId());
  if (!initialised) {
    initialised = true;
    initChart();
    initPanels();
    initPrefs();
    if (fresh && prefs) setTimeframe(prefs.timeframe);
  } else {
    loadBars().catch(() => {});
    loadSignal();
    loadPortfolio();
  }
  startLive();
}

let initialised = false;
window.copilot = { store, setBusy };
wire();
showTab("chat");
init();
setInterval(loadHealth, 30000);
