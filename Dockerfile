# One image for every durabot role; the command picks the role:
#   docker run IMAGE worker                       (the default)
#   docker run -p 3000:3000 IMAGE slack --no-local-worker
#   docker run IMAGE discord --no-local-worker
# Configuration comes from the environment (see deploy/env.example); no .env file is baked in.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/durabot
ENV PATH=/opt/durabot/bin:$PATH
WORKDIR /src
# Extra packages for this image, for example the OTLP trace exporter:
#   docker build --build-arg EXTRA_PACKAGES="opentelemetry-exporter-otlp-proto-http" .
ARG EXTRA_PACKAGES=""
COPY pyproject.toml constraints.txt README.md* ./
COPY agent_core ./agent_core
COPY bots ./bots
COPY workers ./workers
# No extras: the dev extra's local Temporal and Redis servers have no place in production. The
# constraints pin every package to the version the suite ran with (EXTRA_PACKAGES not listed are free).
RUN pip install -c constraints.txt . ${EXTRA_PACKAGES}

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/durabot/bin:$PATH
RUN groupadd --system --gid 10001 durabot \
    && useradd --system --uid 10001 --gid durabot --home-dir /home/durabot --create-home \
       --shell /usr/sbin/nologin durabot \
    && install -d -o durabot -g durabot /home/durabot/.durabot/blobs
COPY --from=build /opt/durabot /opt/durabot
# .durabot/ (the default SQLite database of Slack installations) and .durabot/blobs (files) belong to
# durabot, so volumes mounted there (compose) start writable.
RUN install -d -o 10001 -g 10001 /home/durabot/.durabot
WORKDIR /home/durabot
USER 10001:10001
# 3000: Slack HTTP mode (POST /slack/events). 9464: /healthz, /readyz, /metrics.
EXPOSE 3000 9464
# durabot is PID 1 and handles SIGTERM itself: the worker stops polling and drains running
# activities for up to 30 s, so give it a longer stop timeout (compose: stop_grace_period,
# Kubernetes: terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["durabot"]
CMD ["worker"]
