# syntax=docker/dockerfile:1
# quantserve: the API (gunicorn with uvicorn workers) and the offline pipeline (Spark
# needs Java) in one image, run as an unprivileged user.
#   docker build -t quantserve:0.1.0 .
#   docker run --rm -v qs-data:/app/data -v qs-models:/app/models quantserve:0.1.0 quantserve pipeline --if-missing
#   docker run -p 8000:8000 -e 'QUANTSERVE_API_KEYS=alice:trader:<sha256>' -v qs-data:/app/data -v qs-models:/app/models quantserve:0.1.0
# The API refuses to start without API keys (`quantserve keys create` makes one), unless
# QUANTSERVE_DEV_MODE=1, which is for development only.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The pinned dependencies first, in their own layer: rebuilt only when the pins change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -c constraints.txt -r requirements.txt
COPY README.md ./
COPY app ./app
COPY training ./training
COPY optimizer ./optimizer
COPY backtest ./backtest
RUN pip install --no-deps . \
    && find /opt/venv -name __pycache__ -type d -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
# Java for Spark (the pipeline job and the CronJob's spark-submit); nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 quantserve \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin quantserve
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    QUANTSERVE_CONFIG_FILE=/app/config/default.yaml \
    QUANTSERVE_DATA_DIR=/app/data \
    QUANTSERVE_MODELS_DIR=/app/models \
    PROMETHEUS_MULTIPROC_DIR=/tmp/quantserve-metrics \
    WEB_CONCURRENCY=2
COPY --from=build /opt/venv /opt/venv
COPY config ./config
# The dashboard's /model-card page renders these (docs_dir defaults to ./docs).
COPY docs/model_card.md ./docs/
COPY docs/model_card ./docs/model_card
COPY deploy/gunicorn.conf.py ./deploy/
COPY deploy/spark ./deploy/spark
RUN mkdir -p data models audit backtests && chown -R 10001:10001 data models audit backtests
USER 10001:10001
EXPOSE 8000
# Liveness only: /readyz stays 503 until a model exists, which is no reason to restart.
HEALTHCHECK --interval=30s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py"]
