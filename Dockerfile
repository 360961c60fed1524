# syntax=docker/dockerfile:1
# watchkeeper gateway, monitor and loop runner in one image.
#
#   docker build -t watchkeeper .
#   docker build --build-arg EXTRAS=serve,monitor,postgres,storage,s3 -t watchkeeper .
#   docker run -p 8080:8080 -e WATCHKEEPER_PREDICT_TOKENS=... watchkeeper
#
# The entry point is the `watchkeeper` command: the default arguments serve the gateway; the
# Kubernetes manifests in deploy/k8s run `monitor run` and `loop watch` from the same image.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
# Which optional parts go into the image (extras of pyproject.toml, comma-separated).
ARG EXTRAS=serve,monitor,postgres,storage,s3,skops,lightgbm
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY deploy/docker/install.sh /tmp/install.sh
RUN sh /tmp/install.sh /opt/watchkeeper /src "${EXTRAS}"

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="watchkeeper" \
      org.opencontainers.image.description="Model monitoring, registry and serving gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 watchkeeper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home watchkeeper
COPY --from=build /opt/watchkeeper /opt/watchkeeper
ENV PATH=/opt/watchkeeper/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WATCHKEEPER_ROOT=/data/.watchkeeper \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1
WORKDIR /data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["watchkeeper"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
