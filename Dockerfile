# One image for every Orderflow app; docker-compose.yml picks the app by command.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY actors ./actors
COPY apps ./apps
COPY readmodels ./readmodels
ENV PYTHONPATH=/app
