"""The hard risk rules, the rules about open positions, and the pricing of proposals."""
