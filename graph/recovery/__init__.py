"""Crash recovery: the notes a run leaves (notes) and finishing what they show unfinished (runs)."""
