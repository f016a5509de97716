# MediCore FHIR server image: multi-stage, non-root, with a health check.
#   docker build -t medicore .
#   docker run -p 8080:8080 -p 2575:2575 -v medicore-data:/data medicore
# Build with --build-arg MONGO_TOOLS=0 to leave out mongodump/mongorestore (SQLite-only sites).

# -- build: wheels for the app and every dependency ---------------------------------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY converters ./converters
COPY profiles ./profiles
COPY auth ./auth
COPY audit ./audit
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- tools: MongoDB Database Tools for `medicore backup` against MongoDB ------------------
FROM debian:bookworm-slim AS tools
ARG MONGO_TOOLS=1
ARG MONGO_TOOLS_VERSION=100.10.0
RUN mkdir -p /tools && if [ "$MONGO_TOOLS" = "1" ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
      && arch="$(dpkg --print-architecture | sed 's/amd64/x86_64/;s/arm64/arm64/')" \
      && curl -fsSL "https://fastdl.mongodb.org/tools/db/mongodb-database-tools-debian12-${arch}-${MONGO_TOOLS_VERSION}.tgz" \
         | tar -xz --strip-components=2 -C /tools --wildcards '*/bin/mongodump' '*/bin/mongorestore' \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# -- runtime -----------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEDICORE_HOST=0.0.0.0 \
    MEDICORE_PORT=8080 \
    MEDICORE_MLLP_PORT=2575 \
    MEDICORE_DATA_DIR=/data \
    MEDICORE_STORE=sqlite:////data/medicore.db
RUN groupadd --system --gid 10001 medicore \
    && useradd --system --uid 10001 --gid medicore --home-dir /data --shell /usr/sbin/nologin medicore \
    && mkdir -p /data /backups \
    && chown medicore:medicore /data /backups
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --from=tools /tools/ /usr/local/bin/
COPY ops /opt/medicore/ops
USER 10001:10001
WORKDIR /data
VOLUME ["/data", "/backups"]
EXPOSE 8080 2575
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen(f\"http://127.0.0.1:{os.environ.get('MEDICORE_PORT','8080')}/health/ready\", timeout=4).status == 200 else 1)"]
# uvicorn drains in-flight requests on SIGTERM; give it time before SIGKILL (compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["medicore", "serve"]
