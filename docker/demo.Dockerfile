# The demo workload of docker-compose.yml: dbpulse installed from this repository, running
# `dbpulse demo` under opentelemetry-instrument (the zero-code path users take).
# Build context: the repository root (docker compose build demo).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY instrumentation ./instrumentation
RUN pip install ".[all]" "opentelemetry-distro==0.66b1"

# Run unprivileged; the SQLite demo database lives in the user's home.
RUN useradd --create-home --uid 10001 dbpulse
USER dbpulse
WORKDIR /home/dbpulse

# OTEL_SERVICE_NAME and OTEL_EXPORTER_OTLP_ENDPOINT come from docker-compose.yml.
CMD ["opentelemetry-instrument", "python", "-m", "dbpulse.cli", "demo", "--workload", "sqlite"]
