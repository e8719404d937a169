'use strict';
// The clients of the compatibility matrix: how to run each driver, what it
// needs, and which scenarios it can express (the others are "n/a").

const SCENARIOS = ['hello-unix', 'hello-tcp', 'names', 'call', 'signals', 'unicast', 'fds', 'properties',
  'large', 'monitor', 'noreply', 'activation'];
const ALL = SCENARIOS.filter((s) => s !== 'activation');
const PY = '/usr/bin/python3';

const CLIENTS = [
  { name: 'python3-dbus', implementation: 'libdbus', command: [PY, 'python-dbus.py'], requires: [PY], scenarios: ALL },
  { name: 'python3-gi', implementation: 'GDBus', command: [PY, 'python-gi.py'], requires: [PY],
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
];

// Debian packages the clients (and the reference buses) need.
const PACKAGES = ['dbus', 'dbus-bin', 'dbus-daemon', 'dbus-broker', 'python3', 'python3-dbus', 'python3-gi',
  'libglib2.0-bin', 'systemd', 'qdbus-qt5', 'qtchooser'];

module.exports = { SCENARIOS, CLIENTS, PACKAGES };
