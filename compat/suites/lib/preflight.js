'use strict';
// Installing the suites, and refusing to start a run whose numbers would be
// meaningless because of the machine rather than the daemon.

const fs = require('fs');
const { spawnSync } = require('child_process');
const { DBUS_TESTS, DBUS_DEBUG, GLIB_TESTS } = require('./catalogue');
const crypto = require('crypto');
const { SYSTEM_PATH } = require('./sandbox');
const { MARK_VAR, reap } = require('./procs');

const PACKAGES = [
  'dbus-tests',          // dbus' installed tests and its debug build (dbus-launch honouring DBUS_TEST_DAEMON)
  'libglib2.0-tests',    // GLib's installed tests
  'python3-dbusmock',    // GLib's *-monitor-*.py tests
  'python3-gi', 'gir1.2-glib-2.0', 'python3-dbus',
  'xdg-desktop-portal',  // the *-portal.py tests skip without it
  'xvfb', 'xauth',       // test-dbus-launch-x11.sh skips without xvfb-run
  'dbus-bin',            // dbus-send, dbus-monitor, dbus-uuidgen used by the scripts
  'dbus-daemon',
];

function install() {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const steps = [
    ['apt-get', ['update']],
    ['apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES]],
    // The dbus-launch tests bail out without a machine ID.
    ['dbus-uuidgen', ['--ensure']],
  ];
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `status ${r.status}`})`);
  }
}

function readable(file) {
  try {
    return fs.readFileSync(file, 'utf8').trim().length > 0;
  } catch {
    return false;
  }
}

// Returns { errors, warnings } about the machine.
function checkMachine() {
  const errors = [];
  const warnings = [];
  for (const dir of [DBUS_TESTS, `${DBUS_DEBUG}/bin/dbus-launch`, GLIB_TESTS]) {
    if (!fs.existsSync(dir)) errors.push(`${dir} is missing: install the suites with --install`);
  }
  if (!readable('/etc/machine-id') && !readable('/var/lib/dbus/machine-id')) {
    errors.push('no machine ID (the dbus-launch tests bail out): run "dbus-uuidgen --ensure" or --install');
  }
  if (process.getuid() !== 0) {
    warnings.push('not running as root: the tests that switch uids will skip or fail, so the numbers are not comparable');
  }
  if (!fs.existsSync('/usr/bin/xvfb-run')) warnings.push('xvfb-run missing: test-dbus-launch-x11.sh will skip');
  if (!fs.existsSync('/usr/libexec/xdg-desktop-portal')) warnings.push('xdg-desktop-portal missing: the *-portal.py tests will skip');
  return { errors, warnings };
}

function userExists(name) {
  return spawnSync('id', ['-u', name], { stdio: 'ignore' }).status === 0;
}

// The daemon must start from an empty environment, and (because
// test-uid-permissions starts it as user messagebus) also as messagebus.
// Even "--version" may leave processes behind, so it carries a marker too.
async function checkDaemon(daemon) {
  const mark = `preflight-${crypto.randomBytes(6).toString('hex')}`;
  try {
    return checkDaemonMarked(daemon, mark);
  } finally {
    await reap(mark, 0, { graceMs: 1000 });
  }
}

function checkDaemonMarked(daemon, mark) {
  const errors = [];
  let st;
  try {
    st = fs.statSync(daemon.path);
  } catch {
    return [`${daemon.label}: ${daemon.path} does not exist`];
  }
  if (!st.isFile()) return [`${daemon.label}: ${daemon.path} is not a file`];
  const probe = ['env', '-i', `PATH=${SYSTEM_PATH}`, `${MARK_VAR}=${mark}`, daemon.path, '--version'];
  const asRoot = spawnSync(probe[0], probe.slice(1), { encoding: 'utf8', timeout: 30000 });
  if (asRoot.status !== 0) {
    errors.push(`${daemon.label}: "${daemon.path} --version" fails in an empty environment (PATH=${SYSTEM_PATH}): ${(asRoot.stderr || '').trim().split('\n').pop() || `status ${asRoot.status}`}`);
    return errors;
  }
  if (process.getuid() === 0 && userExists('messagebus')) {
    const asBus = spawnSync('runuser', ['-u', 'messagebus', '--', ...probe], { encoding: 'utf8', timeout: 30000, cwd: '/' });
    if (asBus.status !== 0) {
      errors.push(`${daemon.label}: "${daemon.path} --version" fails as user messagebus: ${(asBus.stderr || '').trim().split('\n').pop() || `status ${asBus.status}`}\n`
        + '    test-uid-permissions starts the daemon as messagebus, so the daemon and everything it loads\n'
        + '    (for kdbus-bridge: the whole checkout including dist/, build/ and node_modules/) must be\n'
        + '    readable by that user, and every directory above it searchable (o+x).');
    }
  }
  return errors;
}

module.exports = { install, checkMachine, checkDaemon, PACKAGES };
