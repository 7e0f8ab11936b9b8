# syntax=docker/dockerfile:1
# The kamal-backup image: the Kamal accessory that runs `kamal-backup schedule` (see examples/).

ARG PYTHON_VERSION=3.13

# --- build: the wheel, from the sources only ---------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-trixie AS build
WORKDIR /src
RUN pip install --no-cache-dir "hatchling==1.27.0"
COPY pyproject.toml README.md LICENSE requirements.lock ./
COPY kamal_backup ./kamal_backup
COPY tui ./tui
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist . \
 && python -m venv /opt/kamal-backup \
 && /opt/kamal-backup/bin/pip install --no-cache-dir --constraint requirements.lock /dist/*.whl \
 && /opt/kamal-backup/bin/kamal-backup version

# --- runtime ----------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-trixie

# PostgreSQL client majors installed side by side; the adapter uses the one matching the server.
ARG PG_MAJORS="14 15 16 17 18"
ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="kamal-backup" \
      org.opencontainers.image.description="Encrypted, restic-backed database and file backups for apps deployed with Kamal" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.documentation="https://github.com/kamal-backup/kamal-backup/tree/main/docs" \
      org.opencontainers.image.source="https://github.com/kamal-backup/kamal-backup"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# restic 0.18 (Debian trixie), MariaDB and SQLite clients, rclone, ssh for sftp repositories,
# tini as PID 1; then the PostgreSQL project's apt repository for several client majors.
# DL3008: Debian's security updates replace pinned versions; the image is rebuilt per release.
# SC2046: the client list is split into package names on purpose.
# hadolint ignore=DL3008,SC2046
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl gnupg tini restic mariadb-client mariadb-client-core \
      sqlite3 rclone openssh-client \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
      https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt trixie-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      $(for major in ${PG_MAJORS}; do echo "postgresql-client-${major}"; done) \
 && apt-get purge -y --auto-remove curl gnupg \
 && rm -rf /var/lib/apt/lists/* \
 && restic version

COPY --from=build /opt/kamal-backup /opt/kamal-backup

RUN useradd --system --uid 1000 --user-group --home-dir /var/lib/kamal-backup kamal-backup \
 && install -d -o kamal-backup -g kamal-backup -m 0700 /var/lib/kamal-backup /var/cache/restic \
 && install -d -o kamal-backup -g kamal-backup -m 0750 /restore /restore/files /restore/db

ENV PATH="/opt/kamal-backup/bin:${PATH}" \
    KAMAL_BACKUP_STATE_DIR=/var/lib/kamal-backup \
    RESTIC_CACHE_DIR=/var/cache/restic \
    HOME=/var/lib/kamal-backup \
    COLORTERM=truecolor \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# uid 1000 is the app user of Rails' default Dockerfile, so the mounted files are readable.
USER 1000:1000
VOLUME ["/var/lib/kamal-backup", "/var/cache/restic"]

HEALTHCHECK --interval=5m --timeout=30s --start-period=1m --retries=2 \
  CMD ["kamal-backup", "health"]

ENTRYPOINT ["tini", "--"]
CMD ["kamal-backup", "schedule"]
