# One image for every Orderflow app; docker-compose.yml picks the app by command.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY actors ./actors
COPY apps ./apps
COPY readmodels ./readmodels
ENV PYTHONPATH=/app
# Run as an unprivileged user (uid/gid 10001), so Kubernetes pods can set runAsNonRoot
# (deploy/helm/orderflow); the app only reads its files.
RUN groupadd --gid 10001 orderflow && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin orderflow
USER 10001:10001
