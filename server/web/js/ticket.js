// A proposal's money figures, recomputed in the page while the trader edits it. Estimates only: the same
// formulas as the server (tools/schemas.py SymbolSpec.money, tools/broker/pricing.py margin_usd), but the
// risk gate re-prices every edit and decides.

function money(spec, distance, lots, price) {
  let value = distance * spec.contract_size * lots;
  if (spec.quote_currency && spec.quote_currency !== "USD") value /= price; // USDJPY: quote → USD
  return Math.round(value * 100) / 100;
}

export function marginUsd(spec, symbol, lots, price, leverage) {
  let notional = lots * spec.contract_size;
  if (!symbol.toUpperCase().startsWith("USD")) notional *= price;
  return Math.round((notional / leverage) * 100) / 100;
}

// {risk_usd, risk_pct, reward_usd, risk_reward, margin_usd, stop_pips, take_profit_pips} for an open trade.
export function estimate({ spec, symbol, side, lots, entry, stopLoss, takeProfit, equity, leverage }) {
  const out = { risk_usd: null, risk_pct: null, reward_usd: null, risk_reward: null, margin_usd: null,
    stop_pips: null, take_profit_pips: null, problems: [] };
  if (!spec || !(lots > 0) || !(entry > 0)) return out;
  const sign = side === "BUY" ? 1 : -1;
  if (stopLoss > 0) {
    if ((entry - stopLoss) * sign <= 0) out.problems.push(`the stop loss must be ${side === "BUY" ? "below" : "above"} the entry`);
    out.risk_usd = money(spec, Math.abs(entry - stopLoss), lots, stopLoss);
    out.stop_pips = Math.round((Math.abs(entry - stopLoss) / spec.pip_size) * 10) / 10;
    if (equity > 0) out.risk_pct = Math.round((out.risk_usd / equity) * 10000) / 100;
  }
  if (takeProfit > 0) {
    if ((takeProfit - entry) * sign <= 0) out.problems.push(`the take profit must be ${side === "BUY" ? "above" : "below"} the entry`);
    out.reward_usd = money(spec, Math.abs(takeProfit - entry), lots, takeProfit);
    out.take_profit_pips = Math.round((Math.abs(takeProfit - entry) / spec.pip_size) * 10) / 10;
  }
  if (out.risk_usd > 0 && out.reward_usd !== null) out.risk_reward = Math.round((out.reward_usd / out.risk_usd) * 100) / 100;
  if (leverage > 0) out.margin_usd = marginUsd(spec, symbol, lots, entry, leverage);
  if (spec.lot_step > 0) {
    const steps = lots / spec.lot_step;
    if (Math.abs(steps - Math.round(steps)) > 1e-6) out.problems.push(`size must be a multiple of ${spec.lot_step} lots`);
  }
  if (spec.min_lot && lots < spec.min_lot) out.problems.push(`size below the minimum ${spec.min_lot} lots`);
  return out;
}

// What closing `position` now locks in: its floating P&L at the current mark (bid for BUY, ask for SELL).
export function closePnl(position) {
  return position ? position.profit : null;
}
