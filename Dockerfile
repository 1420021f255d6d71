# The copilot API + web chat. Production expects an external Redis 8 / Redis Stack (REDIS_URL) and Ollama.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md* ./
COPY config ./config
COPY prompts ./prompts
COPY tools ./tools
COPY graph ./graph
COPY server ./server
RUN pip install . && useradd --create-home --uid 10001 copilot && mkdir -p /app/data /app/logs \
    && chown -R copilot /app/data /app/logs
USER copilot

# State lives in Redis, so any number of workers (or containers) can serve any session.
ENV SERVER__HOST=0.0.0.0 SERVER__PORT=3602 DATA_DIR=/app/data
EXPOSE 3602
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:3602/api/health', timeout=4)" || exit 1
CMD ["copilot", "serve", "--workers", "4"]
