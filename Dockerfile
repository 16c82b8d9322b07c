# syntax=docker/dockerfile:1
# hotpapers in a container (README: Run it as a service).
#
#   docker build -t hotpapers .
#   docker run -d --name hotpapers --env-file .env -v hotpapers-data:/data \
#       -p 127.0.0.1:8080:8080 hotpapers
#
# The bot runs as an unprivileged user; its database and state live in the /data volume; the
# web server (health, metrics, archive) listens on port 8080 and the health check asks it.
# Secrets (DISCORD_TOKEN, the sources' tokens, PGPASSWORD) come from the environment at run time,
# never from the image.

ARG PYTHON_VERSION=3.12

# -- build: the wheel of hotpapers and of every dependency, so the runtime needs no compiler ------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip wheel --wheel-dir /wheels .

# -- runtime ------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm

LABEL org.opencontainers.image.title="hotpapers" \
      org.opencontainers.image.description="A Discord bot that posts the day's hottest arXiv papers, ranked by social attention." \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The wheels are mounted for the install only: none of them stays in a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels hotpapers \
    && hotpapers --version

# A fixed, numeric, unprivileged user (Kubernetes' runAsNonRoot can check a number), owning the
# data directory and nothing else.
RUN groupadd --system --gid 10001 hotpapers \
    && useradd --system --uid 10001 --gid hotpapers --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin hotpapers \
    && install --directory --owner=hotpapers --group=hotpapers --mode=0700 /data

# The database (a relative database.url, the default) and the bot's state go in /data; the web
# server is on, reachable through the container's port. A config.toml in /data is read too
# (the working directory), or set HOTPAPERS_CONFIG to a mounted file.
ENV HOTPAPERS_STORAGE__DATA_DIR=/data \
    HOTPAPERS_WEB__ENABLED=true \
    HOTPAPERS_WEB__HOST=0.0.0.0 \
    HOTPAPERS_WEB__PORT=8080
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8080

USER 10001:10001

# Liveness from /healthz, asked from inside the container with the standard library (the slim
# image has no curl): any answer but 2xx, or none within 4 s, is a failure.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HOTPAPERS_WEB__PORT', '8080'), timeout=4)"]

# `hotpapers run` finishes the digests in flight and closes the gateway on SIGTERM; give it the
# time (docker stop -t 30, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hotpapers"]
CMD ["run"]
