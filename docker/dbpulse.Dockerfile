# The dbpulse image of docker-compose.yml: dbpulse installed from this repository with its
# pinned dependencies. Every dbpulse service (the viz server, the ISBN collector, the flow
# producer and consumer, the cache workload) runs this image; compose gives each its command,
# e.g. `opentelemetry-instrument dbpulse demo collector`. tests/compose/test_services.py runs
# those commands with compose's environment against the test harness.
# Build context: the repository root (docker compose build).
#
# Reproducible: the base image is pinned by tag (add @sha256:... once you have verified the
# digest with a registry; it could not be checked where this file was written) and every
# Python dependency by version in docker/requirements.lock (scripts/image-lock.py writes it
# from the environment the tests ran in). setuptools, dbpulse's build backend, comes from pip's
# isolated build (setuptools>=68, pyproject.toml), not from the lock.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY docker/requirements.lock ./docker/requirements.lock
RUN pip install --requirement docker/requirements.lock
COPY pyproject.toml README.md ./
COPY instrumentation ./instrumentation
RUN pip install --no-deps . && pip check

# Run unprivileged; the collector's SQLite file lives in the user's home.
RUN useradd --create-home --uid 10001 dbpulse
USER dbpulse
WORKDIR /home/dbpulse

# Each compose service names its command; without one the container prints the commands.
CMD ["dbpulse", "--help"]
