'use strict';
// The clients of the compatibility matrix: how to run each driver, what it
// needs, and which scenarios it can express (the others are "n/a").

const SCENARIOS = ['hello-unix', 'hello-tcp', 'names', 'call', 'signals', 'unicast', 'fds', 'properties',
  'large', 'monitor', 'noreply', 'activation'];
const ALL = SCENARIOS.filter((s) => s !== 'activation');
const PY = '/usr/bin/python3';

const CLIENTS = [
  { name: 'python3-dbus', implementation: 'libdbus', command: [PY, 'python-dbus.py'], requires: [PY], scenarios: ALL },
];

// Debian packages the clients (and the reference buses) need.
const PACKAGES = ['dbus', 'dbus-bin', 'dbus-daemon', 'dbus-broker', 'python3', 'python3-dbus', 'python3-gi',
  'libglib2.0-bin', 'systemd'];

module.exports = { SCENARIOS, CLIENTS, PACKAGES };
