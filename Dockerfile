# The container image: the single executable (deploy/binary/gameserver.spec) on a small Debian, run as a non-root
# user (docs/operations.md, "The container image"). Build it with scripts/build-image, or:
#
#   podman build --format docker -t gameserver .          (docker build -t gameserver . works the same)
#
#   podman run --network host -v ./config.toml:/srv/gameserver/config.toml:ro -v gameserver-var:/var/lib/gameserver \
#       -e GAMESERVER_REDIS__URL=redis://127.0.0.1:6379/0 gameserver
#
# /srv/gameserver is the executable's folder, so what the executable finds beside itself is found there: config.toml
# (mount your file; without one, the built-in defaults), modules/ (the studio's module packages: mount them, or COPY
# them in an image FROM this one: no rebuild of the executable), game/ (the game data) and var/ (a link to the volume
# /var/lib/gameserver: SQLite, generated secrets, mail). GAMESERVER_<SECTION>__<KEY> variables override the file.
# The server listens on 0.0.0.0. The root filesystem may be read-only: the executable unpacks itself into /tmp.
#
# BASE is the Debian bookworm image both stages start from: public by default; CI, which reaches no registry, builds
# one with debootstrap (tests/blackbox/test_image.py). The build stage needs Debian's packages and PyPI: a proxy's
# CA certificate goes in with `-v CERT:/run/pip-cert.pem:ro --build-arg PIP_CERT=/run/pip-cert.pem` (podman;
# scripts/build-image passes the host's CA bundle so).
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
# python3.11 and its shared libpython (what PyInstaller packs), binutils (objdump, strip) for PyInstaller
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        python3 python3-venv libpython3.11 binutils ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ARG PIP_CERT=""
ARG PIP_INDEX_URL=""
WORKDIR /src
# The dependencies alone first (with empty packages, and an empty README for setup.cfg's long_description, standing
# in for the code): this layer stays cached while only the code and the docs change.
COPY setup.cfg pyproject.toml ./
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi && if [ -z "$PIP_INDEX_URL" ]; then unset PIP_INDEX_URL; fi \
    && python3 -m venv /venv \
    && mkdir gameserver modules enums && touch README.md gameserver/__init__.py modules/__init__.py enums/__init__.py \
    && /venv/bin/pip install --quiet --disable-pip-version-check --no-compile '.[binary]' \
    && /venv/bin/pip uninstall --quiet --yes gameserver \
    && rm -rf gameserver modules enums build
COPY gameserver gameserver
COPY modules modules
COPY enums enums
COPY deploy/binary deploy/binary
RUN /venv/bin/python -m PyInstaller --noconfirm --log-level WARN --distpath /out --workpath /tmp/pyinstaller \
        deploy/binary/gameserver.spec \
    && /out/gameserver --version

FROM ${BASE}
# var/ beside the executable is /var/lib/gameserver, the volume (what deploy/kubernetes mounts, owned by the user so
# that podman's volumes take that owner too)
RUN useradd --system --uid 10001 --user-group --home-dir /srv/gameserver --no-create-home --shell /usr/sbin/nologin \
        gameserver \
    && mkdir -p /srv/gameserver/modules /srv/gameserver/game /var/lib/gameserver \
    && ln -s /var/lib/gameserver /srv/gameserver/var \
    && chown gameserver:gameserver /var/lib/gameserver \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
COPY --from=build /out/gameserver /srv/gameserver/gameserver
COPY game /srv/gameserver/game
ENV PATH=/srv/gameserver:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    HOME=/srv/gameserver \
    GAMESERVER_SERVER__HOST=0.0.0.0
WORKDIR /srv/gameserver
USER gameserver
VOLUME /var/lib/gameserver
# gate TCP, gate WebSocket (and chat over WebSocket), chat TCP, HTTP (/healthz, /metrics, /config, /nodes)
EXPOSE 8880 8881 8890 8000
# /healthz over bash's /dev/tcp: the image has no curl and no Python. Another http.port: set GAMESERVER_HTTP__PORT
# (the check follows it), or HEALTHZ_PORT when the port is set in config.toml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["bash", "-c", \
    "exec 3<>/dev/tcp/127.0.0.1/${HEALTHZ_PORT:-${GAMESERVER_HTTP__PORT:-8000}} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# PID 1 is the executable's bootloader: it passes SIGTERM on to the server (its child) and exits with the server's
# code, 0 after a graceful stop within server.shutdown_grace (10 s; `podman stop` waits 10 s: give --time 15).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gameserver"]
CMD ["run"]
