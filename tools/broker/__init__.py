"""Brokers: the Redis-backed paper broker, the HTTP trading-service client, and the trading API router."""
