// Trading Copilot web chat: streaming answers (SSE over fetch), signal and approval cards, sessions, portfolio.
// Plain JS, no libraries and no CDN, so the page works offline next to a local model.
"use strict";

const state = { session: null, busy: false, specs: {}, timers: [] };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---------- HTTP ----------
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem("copilot.apiKey");
  if (key) h["X-API-Key"] = key;
  return h;
}

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  if (res.status === 401) { $("key-form").hidden = false; }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail || `HTTP ${res.status}`);
  return data;
}

// POST and read Server-Sent Events from the response body (EventSource cannot POST).
async function streamEvents(path, body, onEvent) {
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (res.status === 401) { $("key-form").hidden = false; }
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error(data.detail || `HTTP ${res.status}`);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      onEvent(name, data ? JSON.parse(data) : {});
    }
  }
}

// ---------- formatting ----------
function fmtPrice(symbol, price) {
  if (price === null || price === undefined) return "—";
  const digits = state.specs[symbol] ? state.specs[symbol].digits : 5;
  return Number(price).toFixed(digits);
}
function pipsBetween(symbol, a, b) {
  const spec = state.specs[symbol];
  if (!spec || a == null || b == null) return null;
  return Math.abs(a - b) / spec.pip_size;
}
const money = (v) => {
  if (v === null || v === undefined) return "—";
  const n = Number(v);
  const abs = Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return `${n < 0 ? "-" : ""}$${abs}`;
};
const pct = (v) => (v === null || v === undefined ? "—" : `${Number(v).toFixed(2)}%`);
const rr = (v) => (v === null || v === undefined ? "—" : `${Number(v).toFixed(2)}:1`);

// ---------- chat log ----------
function addMessage(role, text) {
  const node = el("div", { class: `msg ${role}` }, text);
  $("log").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

function signalCard(sig) {
  const sym = sig.symbol;
  const slPips = pipsBetween(sym, sig.entry_price, sig.stop_loss);
  const tpPips = pipsBetween(sym, sig.entry_price, sig.take_profit);
  const withPips = (price, pips) => `${fmtPrice(sym, price)}${pips === null ? "" : ` (${pips.toFixed(1)} pips)`}`;
  const action = String(sig.action || "HOLD");
  const card = el("div", { class: "card signal", "data-testid": "signal-card" },
    el("h3", {}, "Signal: ", el("span", { class: action.toLowerCase() }, action), ` · ${sym} ${sig.timeframe || ""}`),
    el("table", {},
      row("Confidence", `${Math.round((sig.confidence || 0) * 100)}%`),
      row("AMD phase", sig.amd_phase), row("Killzone", sig.killzone),
      row("Entry", fmtPrice(sym, sig.entry_price)),
      row("Stop loss", withPips(sig.stop_loss, slPips)),
      row("Take profit", withPips(sig.take_profit, tpPips)),
      row("R:R", rr(sig.risk_reward)), row("Source", sig.source)),
    el("ol", {}, (sig.reasoning || []).map((r) => el("li", {}, r))));
  $("log").append(card);
  card.scrollIntoView({ block: "end" });
}

function row(label, value) {
  return el("tr", {}, el("td", {}, label), el("td", {}, value === undefined || value === null ? "—" : value));
}

// ---------- approval ----------
function approvalCard(p) {
  const sym = p.symbol;
  const card = el("div", { class: "card approval", "data-testid": "approval-card", "data-proposal": p.proposal_id });
  const countdown = el("span", { class: "countdown" });
  const verdict = p.verdict || { passed: true, reasons: [] };
  const kindLabel = p.kind === "close" ? `Close #${p.ticket}` : p.kind === "modify" ? `Modify #${p.ticket}` : "Open";
  // append() would turn a null into the text "null": optional parts are dropped first.
  card.append(...[
    el("h3", {}, "Approval needed: ", `${kindLabel} `, el("span", { class: p.side }, p.side || ""), ` ${p.size_lots ?? ""} lots ${sym}`),
    p.notice ? el("p", { class: "notice", "data-testid": "approval-notice" }, p.notice) : null,
    p.requote_of
      ? el("p", { class: "notice", "data-testid": "approval-notice" }, "Re-quoted: the price or your account changed since your approval.")
      : null,
    el("table", {},
      row("Entry (now)", fmtPrice(sym, p.entry_price)),
      row("Stop loss", `${fmtPrice(sym, p.stop_loss)} (${p.stop_pips ?? "—"} pips)`),
      row("Take profit", `${fmtPrice(sym, p.take_profit)} (${p.take_profit_pips ?? "—"} pips)`),
      row("At risk", `${money(p.risk_usd)} (${pct(p.risk_pct)} of equity)`),
      row("Reward", money(p.reward_usd)), row("R:R", rr(p.risk_reward)),
      row("Expires in", countdown)),
    el("details", {},
      el("summary", {}, `Risk checks: ${verdict.passed ? "all passed" : "BLOCKED"} (${(verdict.reasons || []).length})`),
      el("ul", { class: verdict.passed ? "" : "reasons-failed" }, (verdict.reasons || []).map((r) => el("li", {}, r)))),
    (p.signal_reasoning || []).length
      ? el("details", {}, el("summary", {}, "Signal reasoning"), el("ol", {}, p.signal_reasoning.map((r) => el("li", {}, r))))
      : null,
  ].filter(Boolean));

  const size = el("input", { type: "number", step: "0.01", value: p.size_lots ?? "", "aria-label": "size lots", name: "size_lots" });
  const sl = el("input", { type: "number", step: "any", value: p.stop_loss ?? "", "aria-label": "stop loss", name: "stop_loss" });
  const tp = el("input", { type: "number", step: "any", value: p.take_profit ?? "", "aria-label": "take profit", name: "take_profit" });
  const reason = el("input", { placeholder: "reason (optional)", "aria-label": "reject reason", name: "reason" });
  const editRow = el("div", { class: "edit-row", hidden: "" }, "Size", size, "SL", sl, "TP", tp,
    el("button", { class: "edit", type: "button", onclick: () => {
      const edits = changedEdits(p, { size_lots: size, stop_loss: sl, take_profit: tp });
      decide(card, p, "edit", edits);
    } }, "Send edit"));
  const rejectRow = el("div", { class: "reject-row", hidden: "" }, reason,
    el("button", { class: "reject", type: "button", onclick: () => decide(card, p, "reject", {}, reason.value) }, "Confirm reject"));
  card.append(el("div", { class: "buttons" },
    el("button", { class: "approve", type: "button", onclick: () => decide(card, p, "approve") }, "Approve"),
    el("button", { class: "edit", type: "button", onclick: () => { editRow.hidden = !editRow.hidden; } }, "Edit…"),
    el("button", { class: "reject", type: "button", onclick: () => { rejectRow.hidden = !rejectRow.hidden; } }, "Reject…")),
    editRow, rejectRow);

  const expires = p.expires_at ? Date.parse(p.expires_at) : null;
  const tick = () => {
    if (card.classList.contains("done")) { countdown.textContent = "decided"; return; }
    if (!expires) { countdown.textContent = "—"; return; }
    const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    countdown.textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "expired";
  };
  tick();
  state.timers.push(setInterval(tick, 1000));
  $("log").append(card);
  card.scrollIntoView({ block: "end" });
}

// Only the fields the trader changed, as positive numbers; the server re-runs the risk gate on them.
function changedEdits(proposal, inputs) {
  const edits = {};
  for (const [key, input] of Object.entries(inputs)) {
    const value = Number(input.value);
    if (input.value !== "" && value > 0 && value !== proposal[key]) edits[key] = value;
  }
  return edits;
}

function closeApprovalCards() {
  document.querySelectorAll(".approval:not(.done)").forEach((card) => {
    card.classList.add("done");
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  });
}

async function decide(card, proposal, decision, edits = {}, reason = "") {
  if (decision === "edit" && Object.keys(edits).length === 0) {
    addMessage("note", "Change the size, SL or TP before sending the edit.");
    return;
  }
  card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  // The card shows up while its run is still finishing; a quick click waits for that run instead of
  // being dropped (the server would answer 409 for a session that is busy).
  while (state.busy) await new Promise((resolve) => setTimeout(resolve, 50));
  card.classList.add("done");
  addMessage("note", `You chose: ${decision}${reason ? ` (${reason})` : ""}`);
  const body = { proposal_id: proposal.proposal_id, decision, edits, reason };
  await run(`/api/sessions/${encodeURIComponent(state.session)}/approval/stream`, body);
}

// ---------- a run (chat message or decision), followed live ----------
async function run(path, body) {
  state.busy = true;
  $("send").disabled = true;
  let bubble = null;
  let signalShown = false;
  const status = (t) => { $("status-line").textContent = t; };
  try {
    await streamEvents(path, body, (name, data) => {
      if (name === "node") status(`… ${data.node}`);
      else if (name === "token") {
        bubble = bubble || addMessage("assistant", "");
        bubble.textContent += data.text;
      } else if (name === "tool") status(`… calling ${data.name}`);
      else if (name === "tool_result") status(`… ${data.name} ${data.ok ? "done" : "failed"}`);
      else if (name === "approval_required") { approvalCard(data.proposal); }
      else if (name === "final") {
        if (!data.pending_approval) closeApprovalCards(); // decided (e.g. by /approve typed in the chat)
        if (!bubble && data.response) bubble = addMessage("assistant", data.response);
        else if (bubble && data.response) bubble.textContent = data.response;
        if (data.signal && !signalShown) { signalCard(data.signal); signalShown = true; }
      } else if (name === "error") addMessage("error", data.message || "the run failed");
    });
  } catch (err) {
    addMessage("error", err.message);
  } finally {
    status("");
    state.busy = false;
    $("send").disabled = false;
    loadPortfolio();
    loadSessions();
  }
}

// ---------- sessions ----------
function newSessionId() {
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

async function loadSessions() {
  let list = [];
  try { list = (await api("GET", "/api/sessions")).sessions; } catch (err) { return; }
  if (state.session && !list.includes(state.session)) list.unshift(state.session);
  $("sessions").replaceChildren(...list.map((s) => el("li", {
    class: s === state.session ? "active" : "", title: s, onclick: () => openSession(s) }, s)));
}

async function openSession(id) {
  state.session = id;
  localStorage.setItem("copilot.session", id);
  state.timers.forEach(clearInterval);
  state.timers = [];
  $("log").replaceChildren();
  $("session-title").textContent = `session ${id}`;
  loadSessions();
  let s = null;
  try { s = await api("GET", `/api/sessions/${encodeURIComponent(id)}`); } catch (err) { return; } // new session
  for (const m of s.messages || []) {
    if (m.role === "user" || m.role === "assistant") { if (m.content) addMessage(m.role, m.content); }
  }
  if (s.last_signal) signalCard(s.last_signal);
  if (s.pending_approval) approvalCard(s.pending_approval);
}

// ---------- portfolio ----------
async function loadPortfolio() {
  let p;
  try { p = await api("GET", "/api/portfolio"); } catch (err) { $("portfolio").textContent = err.message; return; }
  const kv = el("div", { class: "kv" },
    el("span", {}, "Balance"), el("span", {}, money(p.balance)),
    el("span", {}, "Equity"), el("span", {}, money(p.equity)),
    el("span", {}, "Margin"), el("span", {}, money(p.margin)),
    el("span", {}, "Free margin"), el("span", {}, money(p.free_margin)),
    el("span", {}, "Daily P&L"), el("span", { class: p.daily_pnl < 0 ? "profit-neg" : "profit-pos" }, money(p.daily_pnl)));
  const positions = (p.positions || []).map((pos) => el("div", { class: "position", "data-testid": "position" },
    el("div", {}, el("b", { class: pos.type }, pos.type), ` ${pos.size} ${pos.symbol} #${pos.ticket}`),
    el("div", {}, `open ${fmtPrice(pos.symbol, pos.open_price)} · now ${fmtPrice(pos.symbol, pos.current_price)}`),
    el("div", {}, `SL ${fmtPrice(pos.symbol, pos.stop_loss)} · TP ${fmtPrice(pos.symbol, pos.take_profit)}`),
    el("div", { class: pos.profit < 0 ? "profit-neg" : "profit-pos" }, `P&L ${money(pos.profit)}`)));
  $("portfolio").replaceChildren(kv, el("h2", {}, `Positions (${positions.length})`),
    positions.length ? el("div", {}, positions) : el("div", { class: "msg note" }, "no open positions"));
}

async function loadHealth() {
  try {
    const h = await api("GET", "/api/health");
    $("health").textContent = `${h.status} · model ${h.llm_status} · redis ${h.redis_status}`;
    $("health").className = `pill ${h.status === "healthy" ? "ok" : "bad"}`;
  } catch (err) { $("health").textContent = "server unreachable"; $("health").className = "pill bad"; }
}

// ---------- wiring ----------
$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.busy) return;
  $("message").value = "";
  addMessage("user", text);
  run("/api/chat/stream", { message: text, session_id: state.session, symbol: $("symbol").value.trim() || "XAUUSD" });
});
$("new-session").addEventListener("click", () => openSession(newSessionId()));
$("refresh-portfolio").addEventListener("click", loadPortfolio);
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  localStorage.setItem("copilot.apiKey", $("api-key").value.trim());
  $("key-form").hidden = true;
  init();
});

async function init() {
  try { state.specs = await api("GET", "/api/symbols"); } catch (err) { state.specs = {}; }
  loadHealth();
  loadPortfolio();
  await openSession(localStorage.getItem("copilot.session") || newSessionId());
}
init();
setInterval(loadHealth, 30000);
