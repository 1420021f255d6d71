"""Settings for the copilot: one object, env vars > YAML file > packaged defaults."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
