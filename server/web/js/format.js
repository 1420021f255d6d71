// Numbers, money and times as the trader reads them (digits from the server's symbol specs).
import { store } from "./store.js";

export function fmtPrice(symbol, price) {
  if (price === null || price === undefined || Number.isNaN(Number(price))) return "—";
  const spec = store.specs[symbol];
  return Number(price).toFixed(spec ? spec.digits : 5);
}

export function pips(symbol, a, b) {
  const spec = store.specs[symbol];
  if (!spec || a === null || a === undefined || b === null || b === undefined) return null;
  return Math.abs(a - b) / spec.pip_size;
}

export function money(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  const n = Number(value);
  const abs = Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return `${n < 0 ? "-" : ""}$${abs}`;
}

export const signedMoney = (v) => (v === null || v === undefined ? "—" : `${Number(v) > 0 ? "+" : ""}${money(v)}`);
export const pct = (v) => (v === null || v === undefined ? "—" : `${Number(v).toFixed(2)}%`);
export const rr = (v) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? "—" : `${Number(v).toFixed(2)}:1`);
export const profitClass = (v) => (Number(v) < 0 ? "profit-neg" : "profit-pos");

// "14:32:05" in the trader's time zone.
export function localTime(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? "—" : new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// The market clock is UTC history time (replayed), so it is shown as UTC and labelled so.
export function marketTime(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "—";
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function countdown(secondsLeft) {
  const left = Math.max(0, Math.round(secondsLeft));
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
}
