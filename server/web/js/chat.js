// The conversation: messages, notices, cards, and runs (a message or a decision) followed live over SSE.
// A run that meets a busy session waits for it (Retry-After) instead of failing; Stop cancels the run.
import { HttpError, api, streamEvents } from "./api.js";
import { approvalCard, signalCard } from "./cards.js";
import { $, el } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { emit, store } from "./store.js";

// Plain words for the graph's steps and tools (the status line never shows internal node names).
const STEPS = {
  load_context: "Reading the market and your account…",
  reason: "Thinking…",
  tools: "Looking it up…",
  risk_gate: "Checking the risk rules…",
  human_approval: "Waiting for your decision…",
  execute: "Sending the order to the broker…",
};
const TOOLS = {
  get_ml_signal: "Reading the signal…",
  analyze_market: "Analysing the market…",
  get_market_data: "Fetching prices…",
  get_portfolio: "Reading your portfolio…",
  set_alert: "Setting the alert…",
  execute_trade: "Pricing the trade…",
  close_position: "Pricing the close…",
  modify_position: "Pricing the change…",
};
// results.py appends the whole proposal as text to the answer; the card shows it, the transcript a short line.
const PROPOSAL_HEAD = "Approval required / Aprobación requerida:";

const queue = [];
let current = null; // {controller, cancelled}
let lastProposal = null;

function scroll(node) {
  node.scrollIntoView({ block: "end" });
}

// The model's answers are Markdown, rendered sanitised (markdown.js); everything else is plain text.
export function addMessage(role, text, attrs = {}) {
  const node = role === "assistant" && text ? renderMarkdown(el("div", { class: `msg ${role}`, ...attrs }), text)
    : el("div", { class: `msg ${role}`, ...attrs }, text);
  $("log").append(node);
  scroll(node);
  return node;
}

// A notice from the market (SL/TP close, alert: with the id of the account's notice) or from the page.
export function addNotice(text, kind = "info", noticeId = null) {
  const attrs = { role: "status", "data-testid": "notice" };
  if (noticeId) attrs["data-notice-id"] = noticeId;
  return addMessage(`notice ${kind}`, text, attrs);
}

function status(text) {
  $("status-line").textContent = text || "";
}

export function setBusy(busy) {
  store.busy = busy;
  $("stop").hidden = !busy;
  $("send").textContent = busy ? "Queue" : "Send";
  document.body.classList.toggle("busy", busy);
}

export function shortLine(p) {
  const what = p.kind === "close" ? `close #${p.ticket} (${p.side} ${p.size_lots} ${p.symbol})`
    : p.kind === "modify" ? `modify #${p.ticket} (${p.symbol})` : `${p.side} ${p.size_lots} lots ${p.symbol}`;
  return `Approval requested: ${what}. Decide on the card.`;
}

// The answer without the proposal's text block (the card carries it), plus a short line.
export function answerText(response, pending) {
  const cut = response.indexOf(PROPOSAL_HEAD);
  if (cut < 0) return response;
  const before = response.slice(0, cut).trim();
  return [before, pending ? shortLine(pending) : ""].filter(Boolean).join("\n\n");
}

export function closeApprovalCards(except) {
  document.querySelectorAll(".approval:not(.done)").forEach((card) => {
    if (card.dataset.proposal === except) return;
    card.classList.add("done");
    card.querySelectorAll("button, input").forEach((b) => { b.disabled = true; });
    if (card.dispose) card.dispose();
  });
  if (!except) { store.proposal = null; emit("proposal", null); }
}

export function showApproval(p) {
  if (document.querySelector(`.approval[data-proposal="${p.proposal_id}"]`)) return;
  closeApprovalCards(p.proposal_id);
  const card = approvalCard(p, { decide, previous: lastProposal });
  lastProposal = p;
  $("log").append(card);
  scroll(card);
}

export function showSignal(sig) {
  const card = signalCard(sig);
  $("log").append(card);
  scroll(card);
}

async function decide(card, proposal, decision, edits = {}, reason = "") {
  if (decision === "edit" && Object.keys(edits).length === 0) {
    addNotice("Change the size, SL or TP before sending the edit.");
    return;
  }
  card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  card.classList.add("done");
  if (card.dispose) card.dispose();
  addMessage("note", `You chose: ${decision}${reason ? ` (${reason})` : ""}`);
  const body = { proposal_id: proposal.proposal_id, decision, edits, reason };
  enqueue({ path: `/api/sessions/${encodeURIComponent(store.session)}/approval/stream`, body });
}

export function sendMessage(text) {
  const bubble = addMessage("user", text);
  if (store.busy) bubble.classList.add("queued");
  enqueue({ path: "/api/chat/stream", body: { message: text, session_id: store.session, symbol: store.symbol }, bubble });
}

// One run at a time from this page: later messages and decisions wait their turn.
function enqueue(job) {
  queue.push(job);
  if (!store.busy) drain();
}

async function drain() {
  setBusy(true);
  while (queue.length) {
    const job = queue.shift();
    if (job.bubble) job.bubble.classList.remove("queued");
    await runWhenFree(job);
  }
  setBusy(false);
  status("");
  emit("run-finished");
}

// The session may be busy with a run started elsewhere (another tab, a re-attached run): wait, then go.
async function runWhenFree(job) {
  current = { cancelled: false, controller: new AbortController() };
  for (let attempt = 0; ; attempt += 1) {
    try {
      await follow(job.path, job.body);
      return;
    } catch (err) {
      if (err instanceof HttpError && err.status === 409 && err.retryAfter && !current.cancelled && attempt < 60) {
        status(`Another run of this session is still going; waiting ${err.retryAfter}s (Stop cancels it)…`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(err.retryAfter, 5) * 1000));
        if (current.cancelled) return;
        continue;
      }
      if (current.cancelled) return;
      addMessage("error", err.message);
      return;
    }
  }
}

async function follow(path, body) {
  let bubble = null;
  let signalShown = false;
  await streamEvents("POST", path, body, (name, data) => {
    if (name === "node") status(STEPS[data.node] || "Working…");
    else if (name === "token") {
      bubble = bubble || addMessage("assistant", "");
      bubble.textContent += data.text;
    } else if (name === "tool") status(TOOLS[data.name] || "Working…");
    else if (name === "tool_result") status(data.ok ? "Done, writing the answer…" : "That did not work, writing the answer…");
    else if (name === "approval_required") showApproval(data.proposal);
    else if (name === "recovered") addNotice("A run of this session that was cut short has been completed first.");
    else if (name === "final") {
      if (data.pending_approval) showApproval(data.pending_approval);
      else closeApprovalCards(); // decided (e.g. by /approve typed in the chat) or nothing pending
      const text = answerText(data.response || "", data.pending_approval);
      if (!bubble && text) bubble = addMessage("assistant", text);
      else if (bubble) renderMarkdown(bubble, text);
      if (data.signal && !signalShown) { showSignal(data.signal); signalShown = true; }
      if (data.order) emit("order", data.order);
    } else if (name === "error") {
      if (current && current.cancelled) addNotice("Stopped: the run was cancelled. Nothing after the last step was done.");
      else addMessage("error", data.message || "the run failed");
    }
  }, { signal: current.controller.signal });
}

// Stop: the server cancels the session's run (in whichever process runs it); queued messages are dropped.
export async function cancelRun() {
  if (!store.busy) return;
  queue.length = 0;
  if (current) current.cancelled = true;
  status("Stopping…");
  try {
    const res = await api("POST", `/api/sessions/${encodeURIComponent(store.session)}/cancel`);
    if (res.status === "cancelling") addNotice("Stopping: the run is on another server process; it stops within seconds.");
  } catch (err) {
    if (!(err instanceof HttpError && err.status === 409)) addMessage("error", err.message);
  }
}

export function resetLog() {
  closeApprovalCards();
  lastProposal = null;
  $("log").replaceChildren();
}
