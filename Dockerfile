# The one image for web, worker, beat and the one-shot migrate service (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=config.settings \
    MAHNWESEN_VAR_DIR=/app/var

WORKDIR /app

# WeasyPrint (PDF letters) draws text with pango; Noto fonts cover Latin, Arabic, Hebrew and CJK names.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    fonts-noto-core fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install -r /tmp/requirements.txt

COPY . .

# Static files are collected at build time (hashed names, compressed); whitenoise serves them.
# The secret key is a placeholder for this one command only: settings refuse to start without one.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mahnwesen \
 && mkdir -p /app/var/media \
 && chown -R mahnwesen /app/var

USER mahnwesen
EXPOSE 8000
# Threaded gunicorn workers (config/gunicorn_conf.py): WEB_CONCURRENCY processes, GUNICORN_THREADS threads each.
CMD ["gunicorn", "config.wsgi", "-c", "python:config.gunicorn_conf"]
