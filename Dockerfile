# syntax=docker/dockerfile:1
# One image recipe for the four services; SERVICE picks which. Build from the repository
# root (the services depend on the shared workspace package; assessment reads deploy/seed):
#   docker build --build-arg SERVICE=registry -t microcred-registry .
# SERVICE is one of assessment, issuance, registry, notify. Everything is shared except the
# last stage, which holds what differs per service: its port, its module, its seed file.
# tests/contract/test_deployment_consistency.py reads this file for each service.

ARG PYTHON_IMAGE=python:3.11-slim
ARG SERVICE

# --- build: the locked environment of one service in /app/.venv ---------------------------
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN case "${SERVICE}" in assessment|issuance|registry|notify) ;; \
      *) echo "build with --build-arg SERVICE=assessment|issuance|registry|notify" >&2; exit 1;; \
    esac
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Third-party dependencies first, from uv.lock only: this layer is rebuilt only when the
# lock or a manifest changes, not on every code change.
COPY uv.lock pyproject.toml ./
COPY shared/pyproject.toml shared/
COPY services/${SERVICE}/pyproject.toml services/${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package microcred-${SERVICE} --no-install-workspace

# Then the workspace code, installed as regular (non-editable) packages so that the
# runtime stage needs nothing but the venv.
COPY shared/src shared/src
COPY services/${SERVICE}/src services/${SERVICE}/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package microcred-${SERVICE} --no-editable

# --- runtime: what every service image has ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 microcred \
 && useradd --system --uid 10001 --gid microcred --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin microcred
COPY --from=build /app/.venv /app/.venv
# MICROCRED_HTTP_HOST=0.0.0.0: reachable through the container's published port.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MICROCRED_HTTP_HOST=0.0.0.0
WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001

# --- what differs per service (exec-form CMD: the service is PID 1 and gets SIGTERM) ---------
FROM runtime AS assessment
# MICROCRED_SEED_FILE: the settings default is relative to the source tree, which an
# installed (non-editable) package does not sit in.
COPY deploy/seed /app/deploy/seed
ENV MICROCRED_ASSESSMENT_HTTP_PORT=8101 \
    MICROCRED_SEED_FILE=/app/deploy/seed/providers.json
EXPOSE 8101
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MICROCRED_ASSESSMENT_HTTP_PORT', '8101') + '/healthz', timeout=4)"]
CMD ["python", "-m", "microcred_assessment"]

FROM runtime AS issuance
ENV MICROCRED_ISSUANCE_HTTP_PORT=8102
EXPOSE 8102
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MICROCRED_ISSUANCE_HTTP_PORT', '8102') + '/healthz', timeout=4)"]
CMD ["python", "-m", "microcred_issuance"]

FROM runtime AS registry
ENV MICROCRED_REGISTRY_HTTP_PORT=8103
EXPOSE 8103
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MICROCRED_REGISTRY_HTTP_PORT', '8103') + '/healthz', timeout=4)"]
CMD ["python", "-m", "microcred_registry"]

FROM runtime AS notify
ENV MICROCRED_NOTIFY_HTTP_PORT=8104
EXPOSE 8104
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MICROCRED_NOTIFY_HTTP_PORT', '8104') + '/healthz', timeout=4)"]
CMD ["python", "-m", "microcred_notify"]

# --- the image: the stage SERVICE names (BuildKit builds only the stages it needs) ----------
FROM ${SERVICE}
