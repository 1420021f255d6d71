"""Trading tools the model may call, and the services (market data, signals, broker, alerts) behind them."""
