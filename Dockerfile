# One image for every app service of the toy store: the catalog, the order replicas and the
# front-end each run it with `toystore serve <service>` (docker-compose.yml says which). Redis
# runs from the official image. `docker build .` gives the app image (the last stage).

FROM python:3.11.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in a layer of their own, so that a code change reinstalls only the project:
# exactly the pinned versions and hashes of the runtime lock, then the project without deps.
COPY requirements/runtime.lock ./requirements/
RUN pip install --require-hashes -r requirements/runtime.lock

COPY pyproject.toml README.md LICENSE ./
COPY app ./app
RUN pip install --no-deps . && rm -rf build toystore.egg-info

# The services never need root; /data (DATA_DIR) is the one place they write.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent toystore \
    && mkdir /data \
    && chown toystore:toystore /data
USER toystore
ENV HOST=0.0.0.0 \
    DATA_DIR=/data
VOLUME /data
EXPOSE 8000 8001 8101 8102 8103


# Locust for the compose profile "load", beside the app code so that locustfile.py can use the
# shopper in app/client; compose mounts locustfile.py itself, so editing it needs no rebuild.
FROM base AS load
USER root
RUN pip install "locust==2.47.0"  # the version of requirements/dev.lock
USER toystore
EXPOSE 8089
CMD ["locust", "-f", "/app/locustfile.py", "--host", "http://frontend:8000", "--web-host", "0.0.0.0"]


FROM base AS app
# The image runs the front-end unless told otherwise; compose sets the command and the health
# check of each service. Python, since the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["toystore", "health", "frontend"]
CMD ["toystore", "serve", "frontend"]
