"""System prompt, live-context message and history trimming for the model (Spanish and English)."""

from prompts.system import SYSTEM_PROMPT, live_context, trim_history

__all__ = ["SYSTEM_PROMPT", "live_context", "trim_history"]
