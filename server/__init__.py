"""FastAPI server, web chat page, CLI and the embedded Redis runner."""
