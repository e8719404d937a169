'use strict';
// The test programs that exercise a message-bus daemon, and how each suite
// is told which daemon to start. Everything not listed here is accounted
// for, with the reason, in ../EXCLUDED.md.

const path = require('path');

const DBUS_TESTS = '/usr/lib/dbus-1.0/installed-tests/dbus';
const DBUS_DEBUG = '/usr/lib/dbus-1.0/debug-build';
const DBUS_DEBUG_TESTS = `${DBUS_DEBUG}/libexec/installed-tests/dbus`;
const GLIB_TESTS = '/usr/libexec/installed-tests/glib';

// dbus' tests find the daemon in DBUS_TEST_DAEMON, its configuration files
// in DBUS_TEST_DATA and helper programs (test-service, ...) in DBUS_TEST_EXEC.
const dbusEnv = {
  DBUS_TEST_DATA: `${DBUS_TESTS}/data`,
  DBUS_TEST_EXEC: DBUS_TESTS,
};

// Only the debug build's dbus-launch honours DBUS_TEST_DAEMON; the release
// one always starts the system's dbus-daemon. The x11 script never defaults
// DBUS_TEST_DBUS_MONITOR, which would silently disable one of its checks.
const dbusLaunchEnv = {
  DBUS_TEST_DATA: `${DBUS_DEBUG_TESTS}/data`,
  DBUS_TEST_EXEC: DBUS_DEBUG_TESTS,
  DBUS_TEST_DBUS_LAUNCH: `${DBUS_DEBUG}/bin/dbus-launch`,
  DBUS_TEST_DBUS_MONITOR: 'dbus-monitor',
};

// kind: 'gtest' = GLib test harness (TAP with --tap, -l lists, -p selects),
// 'script' = prints TAP itself.
function dbusC(name) {
  return { suite: 'dbus', name, exe: path.join(DBUS_TESTS, name), args: ['--tap'], kind: 'gtest', env: dbusEnv };
}
function glibC(name) {
  return { suite: 'glib', name, exe: path.join(GLIB_TESTS, name), args: ['--tap'], kind: 'gtest', env: {} };
}
function glibPy(name) {
  // python-dbusmock runs "dbus-daemon" from PATH: the runner's PATH puts the
  // daemon under test first under that name.
  return { suite: 'glib', name, exe: path.join(GLIB_TESTS, name), args: [], kind: 'script', env: {} };
}

const TESTS = [
  dbusC('test-dbus-daemon'),
  dbusC('test-dbus-daemon-eavesdrop'),
  dbusC('test-monitor'),
  dbusC('test-header-fields'),
  dbusC('test-sd-activation'),
  dbusC('test-uid-permissions'),
  dbusC('test-containers'),
  { suite: 'dbus', name: 'test-dbus-daemon-fork.sh', exe: `${DBUS_TESTS}/test-dbus-daemon-fork.sh`, args: ['--tap'], kind: 'script', env: dbusEnv },
  // Expects the user's session bus at $XDG_RUNTIME_DIR/bus, started with the
  // standard session configuration: the runner starts one from the daemon.
  { suite: 'dbus', name: 'integration/transient-services.sh', exe: `${DBUS_TESTS}/integration/transient-services.sh`, args: ['--tap'], kind: 'script', env: dbusEnv, sessionBus: true },
  { suite: 'dbus', name: 'test-dbus-launch-eval.sh', exe: `${DBUS_DEBUG_TESTS}/test-dbus-launch-eval.sh`, args: ['--tap'], kind: 'script', env: dbusLaunchEnv },
  { suite: 'dbus', name: 'test-dbus-launch-x11.sh', exe: `${DBUS_DEBUG_TESTS}/test-dbus-launch-x11.sh`, args: ['--tap'], kind: 'script', env: dbusLaunchEnv },

  // GLib: GTestDBus starts G_TEST_DBUS_DAEMON.
  ...[
    'gdbus-bz627724', 'gdbus-connection', 'gdbus-connection-loss', 'gdbus-connection-slow',
    'gdbus-exit-on-close', 'gdbus-export', 'gdbus-introspection', 'gdbus-method-invocation',
    'gdbus-names', 'gdbus-proxy', 'gdbus-proxy-threads', 'gdbus-proxy-unique-name',
    'gdbus-proxy-well-known-name', 'gdbus-subscribe', 'gdbus-test-codegen', 'gdbus-test-codegen-old',
    'gdbus-test-codegen-min-required-2-64', 'gdbus-threading',
    'actions', 'dbus-appinfo', 'debugcontroller', 'fdo-notification-backend',
    'gmenumodel', 'gnotification',
  ].map(glibC),
  // GLib 2.74's /gapplication/no-replace leaves a one-second timeout behind
  // that calls g_application_quit on its app after the app is freed: any
  // later subtest of the same process still running a main loop a second
  // after it started aborts. That happens whenever the remaining subtests'
  // buses take longer to start than dbus-daemon's few milliseconds (a
  // dbus-daemon whose start is delayed by 0.3 s aborts there every time;
  // later GLib releases remove the timeout). In a process of its own the
  // subtest ends before the timeout fires.
  { ...glibC('gapplication'), isolate: ['/gapplication/no-replace'] },
  ...[
    'memory-monitor-dbus.py', 'memory-monitor-portal.py',
    'power-profile-monitor-dbus.py', 'power-profile-monitor-portal.py',
  ].map(glibPy),
];

module.exports = { TESTS, DBUS_TESTS, DBUS_DEBUG, DBUS_DEBUG_TESTS, GLIB_TESTS };
