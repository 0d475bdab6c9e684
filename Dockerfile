# The orchestrator image: the `orchestrator` command, plus the sample workers and starters.
#
#   docker build -t orchestrator:latest .
#   docker run --rm -e ORCHESTRATOR_REDIS_URL=redis://host:6379/0 orchestrator:latest
#
# Without arguments it runs the hello-world worker; any other `orchestrator` verb can be
# given instead (`... orchestrator:latest metrics serve`). deploy/k8s/ runs it on Kubernetes.

# Both stages must share one base: the venv's python is a symlink into it. The Debian
# release is pinned so a rebuild gets the same system libraries; pin a digest
# (python:3.11-slim-bookworm@sha256:...) for byte-for-byte rebuilds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every dependency ships wheels for Linux (hiredis and orjson included), so no compiler is
# needed here either; the runtime stage gets the finished venv and nothing else.
RUN python -m venv /opt/venv

WORKDIR /src
# README.md is the package's long description: the build reads it.
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
# A regular (not editable) install: the venv must not point back into /src. pip also
# byte-compiles the package here, since the runtime's root filesystem is read-only.
RUN /opt/venv/bin/pip install .


FROM ${PYTHON_IMAGE}

# No .pyc writes at run time (the root filesystem is read-only on Kubernetes), and log
# lines reach `kubectl logs` as they are written.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# A fixed uid, so that runAsUser in deploy/k8s/ and file ownership agree.
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin orchestrator

COPY --from=builder /opt/venv /opt/venv

# Left owned by root: the user can read the samples but not change them.
WORKDIR /app
COPY workers/ ./workers/
COPY starters/ ./starters/

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# /metrics, /healthz and /readyz, served when ORCHESTRATOR_METRICS_PORT is set.
ENV ORCHESTRATOR_METRICS_PORT=9464
EXPOSE 9464

ENTRYPOINT ["orchestrator"]
CMD ["worker", "run", "workers/hello_world.py", "--task-queue", "hello-world"]
