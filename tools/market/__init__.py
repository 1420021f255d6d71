"""Market data: symbol specs, clocks (manual, system, replay), CSV history store, HTTP client and API."""
