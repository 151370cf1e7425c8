# One image for all three Moment services; the command picks the service:
#   docker run moment:dev moment-identity run      (or moment-consent / moment-audit; `migrate`)
# Configuration comes from MOMENT_<SERVICE>_* environment variables, see README.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/moment \
    PATH=/opt/moment/bin:$PATH

RUN python -m venv /opt/moment

WORKDIR /build
COPY constraints.txt ./
COPY shared ./shared
COPY services ./services
# Non-editable installs, pinned by constraints.txt: every shared distribution a service needs,
# then the three services. moment-devstack is added without its dependencies: the compose bootstrap
# job uses only its Vault bootstrap and PostgreSQL helpers (hvac and asyncpg are already here); its
# dependencies are mostly the Tansu and OpenBao binaries of `make run`, about 200 MB that no
# container ever launches.
RUN pip install -c constraints.txt \
        ./shared/contracts ./shared/client ./shared/telemetry ./shared/settings \
        ./shared/persistence ./shared/crypto ./shared/auth ./shared/messaging ./shared/runtime \
        ./services/identity ./services/consent ./services/audit \
    && pip install --no-deps ./shared/devstack \
    && rm -rf /build

# A fixed non-root uid, so a volume for Vault credentials can be owned by it. The credentials
# directory exists in the image so that a fresh named volume mounted there inherits the owner.
RUN groupadd --system --gid 10001 moment \
    && useradd --system --uid 10001 --gid moment --home-dir /var/lib/moment --create-home moment \
    && mkdir -p /var/lib/moment/vault-creds \
    && chown -R moment:moment /var/lib/moment \
    && chmod 0700 /var/lib/moment/vault-creds

USER 10001:10001
WORKDIR /var/lib/moment
CMD ["moment-identity", "run"]
