# The clients of the Docker matrix: every client of compat/clients/catalogue.js
# that the suite packages, with the compiled ones built at image build time.
# The fixture service runs here too; the buses run in their own containers.
ARG SUITE=bookworm
FROM debian:${SUITE}
COPY node /usr/local/bin/node
# The package list is the catalogue's (CLIENT_PACKAGES), copied alone so that
# the apt layer is rebuilt only when the list changes.
COPY repo/compat/clients/catalogue.js /opt/compat/catalogue.js
# A package the suite does not have is left out (and listed in
# /opt/compat/missing-packages) rather than failing the build; the runner then
# lists its client as not installed. A package the suite has must install.
RUN apt-get update \
 && want=$(node -p "require('/opt/compat/catalogue.js').CLIENT_PACKAGES.join(' ')") \
 && have="" && missing="" \
 && for p in $want; do if apt-cache show "$p" >/dev/null 2>&1; then have="$have $p"; else missing="$missing $p"; fi; done \
 && echo $missing > /opt/compat/missing-packages \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates $have \
 && rm -rf /var/lib/apt/lists/*
# DBUS_COOKIE_SHA1 (tcp) needs the bus and its clients to share a keyring:
# the runner mounts one volume here in every container.
RUN install -d -m 700 /root/.dbus-keyrings
COPY repo /opt/kdbus-bridge
WORKDIR /opt/kdbus-bridge
ENV COMPAT_CACHE=/opt/compat/cache
RUN node compat/matrix/run --build-dir /opt/compat/build --build-only && rm -rf /opt/compat/cache
