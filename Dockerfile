# Earshot's production image: gunicorn for the web, the same image for Celery worker and beat.
# See docker-compose.yml for how the services are put together.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned runtime dependencies first, so this layer is rebuilt only when the pins change.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The application, run from /app (not installed as a package). Named one by one: no
# .dockerignore is needed to keep .venv, var/ and .git out of the image.
COPY manage.py ./
COPY config ./config
COPY listening ./listening
COPY responses ./responses
COPY templates ./templates
COPY static ./static

# Static files collected at build time, hashed and compressed for whitenoise. Settings need
# these four variables to load; the values are placeholders used for nothing else.
RUN SECRET_KEY=collectstatic-only \
    FIELD_ENCRYPTION_KEYS=collectstatic-only \
    DATABASE_URL=postgres://collectstatic@localhost/collectstatic \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

# Runs as an unprivileged user; var/ is where beat keeps its schedule.
RUN useradd --create-home --uid 1000 earshot && chown earshot:earshot var
USER earshot

EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--graceful-timeout", "30", "--access-logfile", "-"]
