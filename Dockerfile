# One image for every role in docker-compose.yml (web, workers, beat, flower, sandbox).
FROM python:3.12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock flower
COPY . .
ENV PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=shop.settings SHOP_VAR_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "shop.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4"]
