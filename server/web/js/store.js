// The page's shared state and a tiny publish/subscribe bus between modules.

export const store = {
  session: null,
  symbol: "XAUUSD",
  specs: {},
  limits: null,
  portfolio: null,
  quote: null, // {symbol, bid, ask, quote_time, now}
  signal: null, // the signal the risk gate checks now (risk.signal_timeframe)
  proposal: null, // the pending proposal, as last edited on its card
  prefs: null, // the trader's preferences (GET /api/preferences)
  busy: false,
};

const handlers = new Map();

export function on(topic, handler) {
  if (!handlers.has(topic)) handlers.set(topic, new Set());
  handlers.get(topic).add(handler);
  return () => handlers.get(topic).delete(handler);
}

export function emit(topic, data) {
  for (const handler of handlers.get(topic) || []) {
    try {
      handler(data);
    } catch (err) {
      console.error(`handler of ${topic} failed`, err);
    }
  }
}
