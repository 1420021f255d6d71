// Signal cards and the ticket-grade approval card (one card per proposal, no duplicate text bubble).
import { api } from "./api.js";
import { el, row } from "./dom.js";
import { countdown, fmtPrice, localTime, money, pct, pips, profitClass, rr, signedMoney } from "./format.js";
import { emit, on, store } from "./store.js";
import { estimate } from "./ticket.js";

export function signalCard(sig) {
  const sym = sig.symbol;
  const withPips = (price) => {
    const p = pips(sym, sig.entry_price, price);
    return `${fmtPrice(sym, price)}${p === null ? "" : ` (${p.toFixed(1)} pips)`}`;
  };
  const action = String(sig.action || "HOLD");
  return el("div", { class: "card signal", "data-testid": "signal-card" },
    el("h3", {}, "Signal: ", el("span", { class: action.toLowerCase() }, action), ` · ${sym} ${sig.timeframe || ""}`),
    el("table", {},
      row("Confidence", `${Math.round((sig.confidence || 0) * 100)}%`),
      row("AMD phase", sig.amd_phase), row("Killzone", sig.killzone),
      row("Entry", fmtPrice(sym, sig.entry_price)),
      row("Stop loss", withPips(sig.stop_loss)),
      row("Take profit", withPips(sig.take_profit)),
      row("R:R", rr(sig.risk_reward)), row("Source", sig.source)),
    el("ol", {}, (sig.reasoning || []).map((r) => el("li", {}, r))));
}

const KIND_TITLE = { open: "Open", close: "Close", modify: "Modify" };

function title(p) {
  const what = p.kind === "open" ? "" : ` #${p.ticket}`;
  return el("h3", {}, `Approval needed · ${KIND_TITLE[p.kind] || "Open"}${what} `,
    el("span", { class: p.side }, p.side || ""), ` ${p.size_lots ?? ""} lots ${p.symbol}`);
}

function numberInput(name, label, value, step) {
  return el("label", { class: "field" }, label,
    el("input", { type: "number", inputmode: "decimal", step, min: "0", value: value ?? "", name, "aria-label": label }));
}

// The governing signal: the one the risk gate checks at approval (risk.signal_timeframe), fetched now.
function governingSignal(p, target) {
  const show = (s) => {
    if (!s || s.symbol !== p.symbol) return;
    target.replaceChildren(`Governing signal (${s.timeframe}, checked again when you approve): `,
      el("b", { class: String(s.action).toLowerCase() }, s.action),
      ` ${Math.round((s.confidence || 0) * 100)}% confidence · ${s.amd_phase}`);
  };
  if (store.signal && store.signal.symbol === p.symbol) show(store.signal);
  else api("GET", `/api/signal/${encodeURIComponent(p.symbol)}`).then(show).catch(() => {});
  return on("signal", show);
}

// The approval card: its layout (figures, notices, risk checks, the edit and reject forms), its live figures
// (recomputed on each edit, quote and equity) and its expiry countdown, put together for one proposal.
export function approvalCard(p, { decide, previous }) {
  const layout = approvalLayout(p, { decide, previous });
  const render = liveFigures(p, layout);
  for (const input of Object.values(layout.inputs)) input.addEventListener("input", render);
  const unsubscribe = [governingSignal(p, layout.signalLine), on("market", render), on("portfolio", render)];
  const stopTimer = expiryTimer(layout.card, layout.expiryCell, p.expires_at);
  layout.card.dispose = () => { stopTimer(); unsubscribe.forEach((off) => off()); };
  render();
  return layout.card;
}

// Why a re-quote or a notice came with the proposal, in the trader's words.
function approvalNotices(p, previous) {
  const sym = p.symbol;
  const notices = [];
  if (p.notice) notices.push(p.notice);
  if (p.requote_of) {
    const why = previous && previous.entry_price !== p.entry_price
      ? `the price moved from ${fmtPrice(sym, previous.entry_price)} to ${fmtPrice(sym, p.entry_price)} (a new bar) since you approved`
      : "your account or the limits changed since you approved";
    notices.push(`Re-quoted: ${why}. Nothing was sent. Review the new price and approve it, or reject.`);
  }
  return notices;
}

// The card's elements, with the cells the live figures fill (`cells`), the edit inputs by field name, the
// forms, the governing-signal, drift and expiry lines; the buttons call `decide`.
function approvalLayout(p, { decide, previous }) {
  const sym = p.symbol;
  const card = el("div", { class: "card approval", "data-testid": "approval-card", "data-proposal": p.proposal_id, "data-kind": p.kind || "open" });
  const verdict = p.verdict || { passed: true, reasons: [] };
  const cells = {};
  const cell = (name) => (cells[name] = el("span", { "data-field": name }));
  const signalLine = el("p", { class: "governing", "data-testid": "governing-signal" });
  const expiryCell = el("span", { class: "countdown" });
  const driftLine = el("p", { class: "notice drift", hidden: true });

  const rows = [];
  if (p.kind === "close") {
    rows.push(row("Position", `#${p.ticket} ${p.side} ${p.size_lots} ${sym}`),
      row("Closes at (now)", cell("price")), row("P&L locked in", cell("pnl"), { class: "lock-in" }),
      row("SL / TP now", `${fmtPrice(sym, p.stop_loss)} / ${fmtPrice(sym, p.take_profit)}`));
  } else {
    rows.push(row(p.kind === "modify" ? "Price (now)" : "Entry (now)", cell("price")),
      row("Stop loss", cell("sl")), row("Take profit", cell("tp")),
      row("At risk", cell("risk")));
    if (p.kind === "open") rows.push(row("Reward", cell("reward")), row("R:R", cell("rr")), row("Margin", cell("margin")));
  }
  rows.push(row("Expires", expiryCell));

  card.append(...[
    title(p),
    ...approvalNotices(p, previous).map((n) => el("p", { class: "notice", "data-testid": "approval-notice" }, n)),
    signalLine,
    el("table", {}, rows),
    driftLine,
    el("p", { class: "estimate-note", hidden: true }, "Estimate while you edit; the risk gate re-checks the edit and decides."),
    el("ul", { class: "problems reasons-failed" }),
    el("details", {},
      el("summary", {}, `Risk checks: ${verdict.passed ? "all passed" : "BLOCKED"} (${(verdict.reasons || []).length})`),
      el("ul", { class: verdict.passed ? "" : "reasons-failed" }, (verdict.reasons || []).map((r) => el("li", {}, r)))),
    (p.signal_reasoning || []).length
      ? el("details", {}, el("summary", {}, "Signal reasoning"), el("ol", {}, p.signal_reasoning.map((r) => el("li", {}, r))))
      : null,
  ].filter(Boolean));
  const { inputs, editRow } = approvalControls(card, p, decide);
  return { card, cells, inputs, editRow, signalLine, expiryCell, driftLine };
}

// The buttons and their forms. Edit: size (open only: a close or modify takes no size), SL and TP (not for a
// close). Keyboard: Enter sends the open form, Escape closes it.
function approvalControls(card, p, decide) {
  const sym = p.symbol;
  const inputs = {};
  const editFields = [];
  if (p.kind === "open") editFields.push(numberInput("size_lots", "Size (lots)", p.size_lots, store.specs[sym]?.lot_step ?? "0.01"));
  if (p.kind !== "close") {
    editFields.push(numberInput("stop_loss", "Stop loss", p.stop_loss, "any"), numberInput("take_profit", "Take profit", p.take_profit, "any"));
  }
  for (const f of editFields) { const input = f.querySelector("input"); inputs[input.name] = input; }
  const sendEdit = () => decide(card, p, "edit", changedEdits(p, inputs));
  const editRow = el("div", { class: "edit-row", hidden: true }, editFields,
    el("button", { class: "edit", type: "button", onclick: sendEdit }, "Send edit"));
  const reason = el("input", { placeholder: "reason (optional)", "aria-label": "reject reason", name: "reason" });
  const rejectRow = el("div", { class: "reject-row", hidden: true }, reason,
    el("button", { class: "reject", type: "button", onclick: () => decide(card, p, "reject", {}, reason.value) }, "Confirm reject"));
  const toggle = (target, focus) => {
    target.hidden = !target.hidden;
    if (!target.hidden && focus) focus.focus();
  };
  card.append(el("div", { class: "buttons" },
    el("button", { class: "approve", type: "button", onclick: () => decide(card, p, "approve") }, "Approve"),
    editFields.length ? el("button", { class: "edit", type: "button", "aria-expanded": "false",
      onclick: (ev) => { toggle(editRow, Object.values(inputs)[0]); ev.target.setAttribute("aria-expanded", String(!editRow.hidden)); } }, "Edit…") : null,
    el("button", { class: "reject", type: "button", onclick: () => toggle(rejectRow, reason) }, "Reject…")),
  editRow, rejectRow);
  editRow.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ev.target.tagName === "INPUT") { ev.preventDefault(); sendEdit(); }
    if (ev.key === "Escape") { editRow.hidden = true; }
  });
  rejectRow.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ev.target === reason) { ev.preventDefault(); decide(card, p, "reject", {}, reason.value); }
    if (ev.key === "Escape") { rejectRow.hidden = true; }
  });
  return { inputs, editRow };
}

// Live figures: returns render(), which fills the card's cells from the values as edited, the live quote and
// the live equity, warns of a drift past the limit, and publishes the proposal as it stands while undecided.
function liveFigures(p, { card, cells, inputs, editRow, driftLine }) {
  const sym = p.symbol;
  const current = () => {
    const num = (name, fallback) => (inputs[name] && inputs[name].value !== "" ? Number(inputs[name].value) : fallback);
    return { ...p, size_lots: num("size_lots", p.size_lots), stop_loss: num("stop_loss", p.stop_loss), take_profit: num("take_profit", p.take_profit) };
  };
  const livePrice = () => {
    const q = store.quote;
    if (!q || q.symbol !== sym) return null;
    const buying = p.kind === "open" ? p.side === "BUY" : p.side === "SELL"; // a close of a BUY sells at the bid
    return buying ? q.ask : q.bid;
  };
  return () => {
    const now = current();
    const edited = editRow && !editRow.hidden && Object.keys(changedEdits(p, inputs)).length > 0;
    const price = livePrice();
    cells.price.textContent = price === null ? fmtPrice(sym, p.entry_price)
      : `${fmtPrice(sym, price)}${price !== p.entry_price ? ` (quoted ${fmtPrice(sym, p.entry_price)})` : ""}`;
    if (p.kind === "close") {
      const pos = ((store.portfolio && store.portfolio.positions) || []).find((x) => x.ticket === p.ticket);
      cells.pnl.textContent = pos ? signedMoney(pos.profit) : "position no longer open";
      cells.pnl.className = pos ? profitClass(pos.profit) : "";
    } else {
      const equity = store.portfolio ? store.portfolio.equity : null;
      const e = estimate({ spec: store.specs[sym], symbol: sym, side: p.side, lots: now.size_lots, entry: p.entry_price,
        stopLoss: now.stop_loss, takeProfit: now.take_profit, equity, leverage: store.limits?.leverage });
      const show = edited ? e : { ...e, risk_usd: p.risk_usd, risk_pct: p.risk_pct, reward_usd: p.reward_usd,
        risk_reward: p.risk_reward, stop_pips: p.stop_pips ?? e.stop_pips, take_profit_pips: p.take_profit_pips ?? e.take_profit_pips };
      cells.sl.textContent = `${fmtPrice(sym, now.stop_loss)} (${show.stop_pips ?? "—"} pips)`;
      cells.tp.textContent = `${fmtPrice(sym, now.take_profit)} (${show.take_profit_pips ?? "—"} pips)`;
      cells.risk.textContent = `${money(show.risk_usd)} (${pct(show.risk_pct)} of equity)${typeof p.risk_limit_pct === "number" ? ` · your risk ${p.risk_limit_pct} %, cap ${p.risk_cap_pct} %` : ""}`;
      if (cells.reward) {
        cells.reward.textContent = money(show.reward_usd);
        cells.rr.textContent = rr(show.risk_reward);
        cells.margin.textContent = money(e.margin_usd);
      }
      card.querySelector(".estimate-note").hidden = !edited;
      card.querySelector(".problems").replaceChildren(...(edited ? e.problems : []).map((x) => el("li", {}, x)));
    }
    // A price that moved past the drift limit will come back as a re-quote on approval: say so first.
    const limit = store.limits ? store.limits.max_price_drift_pct : null;
    if (p.kind === "open" && price !== null && limit !== null && p.entry_price) {
      const drift = (Math.abs(price - p.entry_price) / p.entry_price) * 100;
      driftLine.hidden = drift <= limit;
      driftLine.textContent = `The price moved ${drift.toFixed(3)}% since this quote (limit ${limit}%): approving brings a re-quote at the new price.`;
    }
    if (!card.classList.contains("done")) {
      store.proposal = now;
      emit("proposal", now);
    }
  };
}

// The expiry countdown in `cell`, each second until the card is decided ("decided") or for good where the
// proposal has no expiry ("—"); returns the function that stops it.
function expiryTimer(card, cell, expiresAt) {
  const expires = expiresAt ? Date.parse(expiresAt) : null;
  const tick = () => {
    if (card.classList.contains("done")) { cell.textContent = "decided"; return false; }
    if (!expires) { cell.textContent = "—"; return true; }
    const left = (expires - Date.now()) / 1000;
    cell.textContent = left > 0 ? `${localTime(expiresAt)} (in ${countdown(left)})` : `expired at ${localTime(expiresAt)}`;
    cell.dataset.left = left > 0 ? countdown(left) : "expired";
    return true;
  };
  tick();
  const timer = setInterval(() => { if (!tick()) clearInterval(timer); }, 1000);
  return () => clearInterval(timer);
}

// Only the fields the trader changed, as positive numbers; the server re-runs the risk gate on them.
export function changedEdits(proposal, inputs) {
  const edits = {};
  for (const [key, input] of Object.entries(inputs)) {
    const value = Number(input.value);
    if (input.value !== "" && value > 0 && value !== proposal[key]) edits[key] = value;
  }
  return edits;
}
