# syntax=docker/dockerfile:1
# quantserve: the API, and the Spark pipeline (Java for Spark's JVM).
# Build: docker build -t quantserve .   Run: docker run -p 8000:8000 -v $PWD/models:/app/models quantserve

FROM python:3.11-slim-bookworm AS build
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY training ./training
COPY optimizer ./optimizer
RUN pip install -c constraints.txt .

FROM python:3.11-slim-bookworm AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 quantserve
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    QUANTSERVE_CONFIG_FILE=/app/config/default.yaml \
    QUANTSERVE_DATA_DIR=/app/data \
    QUANTSERVE_MODELS_DIR=/app/models
COPY --from=build /opt/venv /opt/venv
COPY config ./config
RUN mkdir -p data models && chown -R quantserve:quantserve /app
USER quantserve
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
# Build a model from the embedded data when the mounted store has none, then serve.
CMD ["sh", "-c", "quantserve pipeline --if-missing && exec quantserve serve --host 0.0.0.0 --port 8000"]
