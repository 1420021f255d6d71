"""System prompt, live context, the model's history window and trimming (Spanish and English)."""

from prompts.system import SYSTEM_PROMPT, live_context, trim_history
from prompts.window import as_sent, model_window

__all__ = ["SYSTEM_PROMPT", "as_sent", "live_context", "model_window", "trim_history"]
