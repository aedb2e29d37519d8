# Pantau worker image.
#   docker build -t pantau .
#   docker run --read-only -v pantau-data:/var/lib/pantau \
#     -e PANTAU_BROKER_URL=kafka://broker:9092 -e PANTAU_ENV=production \
#     -e PANTAU_HMAC_SECRET=... -p 6066:6066 pantau
# Checked by tests/test_dockerfile.py with hadolint.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/pantau/src

# Dependencies are pinned in pyproject.toml; the image installs exactly those.
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
COPY sim ./sim
COPY bench ./bench
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 pantau \
    && useradd --system --uid 10001 --gid pantau --no-create-home \
       --home-dir /var/lib/pantau --shell /usr/sbin/nologin pantau \
    && mkdir -p /var/lib/pantau/data \
    && chown -R pantau:pantau /var/lib/pantau

# Listen on all interfaces inside the container (the default is loopback);
# RocksDB tables live in the data volume, so the root FS can be read-only.
ENV PANTAU_WEB_HOST=0.0.0.0 \
    PANTAU_WEB_PORT=6066 \
    PANTAU_DATA_DIR=/var/lib/pantau/data \
    HOME=/var/lib/pantau
WORKDIR /var/lib/pantau
VOLUME ["/var/lib/pantau"]
USER 10001:10001
EXPOSE 6066

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PANTAU_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["pantau"]
CMD ["worker"]
