# gym-gateway: slim image, unprivileged user, config mounted at /config/gateway.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY backends ./backends
RUN pip install '.[cluster]' && useradd --system --uid 10001 --home /app gateway

USER gateway
# Serve the mounted config; bind all interfaces inside the container.
ENV GYM_GATEWAY_CONFIG=/config/gateway.yaml \
    GYM_GATEWAY_SERVER__HOST=0.0.0.0 \
    GYM_GATEWAY_SERVER__PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
ENTRYPOINT ["gym-gateway", "serve"]
