'use strict';
// The clients of the compatibility matrix: how to run each driver, what it
// needs, and which scenarios it can express (the others are "n/a").

const SCENARIOS = ['hello-unix', 'hello-tcp', 'names', 'call', 'signals', 'unicast', 'fds', 'properties',
  'large', 'monitor', 'noreply', 'activation'];
const ALL = SCENARIOS.filter((s) => s !== 'activation');
const PY = '/usr/bin/python3';

const CLIENTS = [
  { name: 'python3-dbus', implementation: 'libdbus', command: [PY, 'python-dbus.py'], requires: [PY], pythonModules: ['dbus'], scenarios: ALL },
  { name: 'python3-gi', implementation: 'GDBus', command: [PY, 'python-gi.py'], requires: [PY], pythonModules: ['gi'],
    scenarios: ALL.filter((s) => s !== 'large') },
  { name: 'dbus-next', implementation: 'dbus-next', command: [process.execPath, 'dbus-next.js'], requires: [],
    scenarios: ['hello-unix', 'hello-tcp', 'names', 'call', 'signals', 'unicast', 'properties', 'large', 'noreply'] },
  { name: 'dbus-send', implementation: 'libdbus', command: ['bash', 'dbus-send.sh'], requires: ['dbus-send', 'dbus-monitor'],
    scenarios: ['hello-unix', 'hello-tcp', 'call', 'signals', 'properties', 'monitor', 'noreply'] },
  { name: 'busctl', implementation: 'sd-bus', command: ['bash', 'busctl.sh'], requires: ['busctl'],
    scenarios: ['hello-unix', 'hello-tcp', 'call', 'signals', 'properties', 'monitor'] },
  { name: 'gdbus', implementation: 'GDBus', command: ['bash', 'gdbus.sh'], requires: ['gdbus'],
    scenarios: ['hello-unix', 'hello-tcp', 'call', 'properties', 'noreply'] },
  { name: 'qdbus', implementation: 'QtDBus', command: ['bash', 'qdbus.sh'], requires: ['qdbus'],
    scenarios: ['hello-unix', 'hello-tcp', 'call', 'properties', 'noreply'] },
  { name: 'godbus', implementation: 'godbus', command: ['{build}/godbus-driver'], requires: ['go'],
    build: 'GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="$COMPAT_CACHE/go" go build -o "$COMPAT_BUILD/godbus-driver" ./godbus',
    scenarios: ALL },
  { name: 'C libdbus', implementation: 'libdbus', command: ['{build}/c-libdbus'], requires: ['cc', 'pkg-config'],
    build: 'cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$COMPAT_BUILD/c-libdbus" c/libdbus.c $(pkg-config --cflags --libs dbus-1 libcrypto)',
    scenarios: ALL },
  { name: 'C sd-bus', implementation: 'sd-bus', command: ['{build}/c-sd-bus'], requires: ['cc', 'pkg-config'],
    build: 'cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$COMPAT_BUILD/c-sd-bus" c/sd-bus.c $(pkg-config --cflags --libs libsystemd libcrypto)',
    scenarios: ALL },
  // zbus 1.x (Debian 12) has no tcp transport.
  { name: 'zbus', implementation: 'zbus', command: ['{build}/zbus-driver'], requires: ['cargo', 'sha256sum'],
    build: 'sh zbus/build.sh', scenarios: ALL.filter((s) => s !== 'hello-tcp') },
  // Net::DBus builds a 32 MiB byte array value by value in Perl: "large" is left out.
  { name: 'Net::DBus', implementation: 'libdbus', command: ['perl', 'net-dbus.pl'], requires: ['perl'], perlModules: ['Net::DBus'],
    scenarios: ALL.filter((s) => s !== 'large') },
  // dbus-native has no unix fd passing, and answers calls itself, so it cannot be a monitor.
  { name: 'dbus-native', implementation: 'dbus-native', command: [process.execPath, 'dbus-native.js'], requires: [], nodeModules: ['dbus-native'],
    scenarios: ALL.filter((s) => s !== 'fds' && s !== 'monitor') },
  { name: 'python3-dbus-next', implementation: 'dbus-next (Python)', command: [PY, 'python-dbus-next.py'], requires: [PY],
    pythonModules: ['dbus_next'], scenarios: ALL },
  // dbus-java 2.8 has no UNIX_FD type. The JNI unix socket library lives outside java's default path.
  { name: 'dbus-java', implementation: 'dbus-java', command: ['java', '-Djava.library.path=/usr/lib/jni', '-jar', '{build}/dbus-java-driver.jar'],
    requires: ['java', 'javac', 'jar'], build: 'sh dbus-java/build.sh', scenarios: ALL.filter((s) => s !== 'fds') },
];

// Debian packages the reference buses and the clients need (the Docker client
// image installs CLIENT_PACKAGES, the bus image the buses).
const BUS_PACKAGES = ['dbus', 'dbus-daemon', 'dbus-broker'];
const CLIENT_PACKAGES = ['dbus-bin', 'python3', 'python3-dbus', 'python3-gi',
  'libglib2.0-bin', 'systemd', 'qdbus-qt5', 'qtchooser', 'libnet-dbus-perl',
  // compiled clients: C (libdbus, sd-bus; OpenSSL for sha256), Go, Rust
  'gcc', 'libc6-dev', 'pkg-config', 'libdbus-1-dev', 'libsystemd-dev', 'libssl-dev',
  'golang-go', 'golang-dbus-dev', 'cargo', 'librust-zbus-dev',
  // dbus-java (JNI unix sockets from libunixsocket-java)
  'default-jdk-headless', 'libdbus-java', 'libunixsocket-java', 'python3-dbus-next'];
const PACKAGES = [...BUS_PACKAGES, ...CLIENT_PACKAGES];

module.exports = { SCENARIOS, CLIENTS, PACKAGES, BUS_PACKAGES, CLIENT_PACKAGES };
