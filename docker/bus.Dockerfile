# The buses of the Docker matrix: kdbus-bridge (built on the host: bin/, dist/,
# build/, node_modules/ and the node binary that built them are copied in),
# and dbus-daemon and dbus-broker as the references (dbus-broker through
# compat/launchers/dbus-broker, a Python script). Only apt is needed to build it.
FROM debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dbus-daemon dbus-broker python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# DBUS_COOKIE_SHA1 (tcp) needs the bus and its clients to share a keyring:
# the runner mounts one volume here in every container.
RUN install -d -m 700 /root/.dbus-keyrings
COPY node /usr/local/bin/node
COPY repo /opt/kdbus-bridge
WORKDIR /opt/kdbus-bridge
