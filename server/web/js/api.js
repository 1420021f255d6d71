// HTTP: JSON calls and Server-Sent Events read over fetch (EventSource can neither POST nor send the API key).
import { $ } from "./dom.js";

export class HttpError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export function apiKey() {
  return localStorage.getItem("copilot.apiKey") || "";
}

function headers(extra = {}) {
  const h = { "Content-Type": "application/json", ...extra };
  const key = apiKey();
  if (key) h["X-API-Key"] = key;
  return h;
}

// `sentKey`: the key the request carried. A 401 to a request sent before the trader saved a key (answered
// after the save, on a slow machine) must not ask for the key again.
async function failure(res, sentKey) {
  if (res.status === 401 && sentKey === apiKey()) $("key-form").hidden = false;
  const data = await res.json().catch(() => ({}));
  const retry = Number(res.headers.get("Retry-After")) || null;
  // A 422's detail is a list of {loc, msg, type} (FastAPI's HTTPValidationError); the others a sentence.
  const detail = Array.isArray(data.detail)
    ? data.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ")
    : data.detail;
  return new HttpError(res.status, detail, retry);
}

export async function api(method, path, body) {
  const sentKey = apiKey();
  const res = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  if (!res.ok) throw await failure(res, sentKey);
  return res.json().catch(() => ({}));
}

// Calls onEvent(name, data, id) for each frame until the stream ends; throws HttpError before the first one.
// A frame with an id and no data (the live feed's opening position) calls onEvent(null, null, id).
export async function streamEvents(method, path, body, onEvent, { signal, lastEventId } = {}) {
  const extra = lastEventId ? { "Last-Event-ID": lastEventId } : {};
  const sentKey = apiKey();
  const res = await fetch(path, {
    method, headers: headers(extra), body: body ? JSON.stringify(body) : undefined, signal,
  });
  if (!res.ok) throw await failure(res, sentKey);
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
      let name = "message";
      let data = "";
      let id = null;
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
      }
      if (data || name !== "message") onEvent(name, data ? JSON.parse(data) : {}, id);
      else if (id) onEvent(null, null, id);
    }
  }
}
