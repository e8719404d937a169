# The clients of the Docker matrix: every client of compat/clients/catalogue.js
# that the suite packages, with the compiled ones built at image build time.
# The fixture service runs here too; the bus runs in its own container.
ARG SUITE=bookworm
FROM debian:${SUITE}
# A package a suite does not have is left out rather than failing the build;
# the runner then lists its client as not installed.
RUN apt-get update \
 && want="dbus-bin python3 python3-dbus python3-gi libglib2.0-bin systemd qdbus-qt5 qtchooser libnet-dbus-perl \
          gcc libc6-dev pkg-config libdbus-1-dev libsystemd-dev libssl-dev golang-go golang-dbus-dev \
          cargo librust-zbus-dev ca-certificates" \
 && have="" && for p in $want; do apt-cache show "$p" >/dev/null 2>&1 && have="$have $p"; done \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $have \
 && rm -rf /var/lib/apt/lists/*
# DBUS_COOKIE_SHA1 (tcp) needs the bus and its clients to share a keyring:
# the runner mounts one volume here in every container.
RUN install -d -m 700 /root/.dbus-keyrings
COPY node /usr/local/bin/node
COPY repo /opt/kdbus-bridge
WORKDIR /opt/kdbus-bridge
ENV COMPAT_CACHE=/opt/compat/cache
RUN node compat/matrix/run --build-dir /opt/compat/build --build-only && rm -rf /opt/compat/cache
