'use strict';
// One isolated run of one test program: private HOME/TMPDIR/XDG_RUNTIME_DIR,
// an empty environment apart from what the suites need, its own session,
// an idle and a hard timeout, and afterwards nothing of it left running.

const fs = require('fs');
const path = require('path');
const os = require('os');
const crypto = require('crypto');
const { spawn } = require('child_process');
const { TapReader } = require('./tap');
const { MARK_VAR, daemonState, reap } = require('./procs');

const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

// Invocations in progress (marker -> session leader), for an interrupted run.
const active = new Map();

class Scratch {
  constructor({ keep = false, logDir = null } = {}) {
    // Readable by everyone: test-uid-permissions runs the bus as another user.
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'kdbus-bridge-suites-'));
    fs.chmodSync(this.root, 0o755);
    this.runId = crypto.randomBytes(6).toString('hex');
    this.count = 0;
    this.keep = keep;
    this.logDir = logDir;
    if (logDir) fs.mkdirSync(logDir, { recursive: true });
  }

  // A directory holding a "dbus-daemon" that is the daemon under test, put
  // first in PATH so that whatever looks the daemon up by name gets it.
  binDir(daemon) {
    const dir = path.join(this.root, `bin-${daemon.label.replace(/[^\w.-]/g, '_')}`);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { mode: 0o755 });
      fs.symlinkSync(daemon.path, path.join(dir, 'dbus-daemon'));
    }
    return dir;
  }

  newInvocationDir(name) {
    this.count += 1;
    const dir = path.join(this.root, `${String(this.count).padStart(4, '0')}-${name.replace(/[^\w.-]/g, '_')}`);
    fs.mkdirSync(dir, { mode: 0o755 });
    const home = path.join(dir, 'home');
    const tmp = path.join(dir, 'tmp');
    const runtime = path.join(dir, 'runtime');
    fs.mkdirSync(home, { mode: 0o700 });
    fs.mkdirSync(tmp);
    fs.chmodSync(tmp, 0o1777); // like /tmp: helpers running as other users write here too
    fs.mkdirSync(runtime, { mode: 0o700 });
    return { dir, home, tmp, runtime };
  }

  logFiles(dirs, daemonLabel, name) {
    const base = this.logDir
      ? path.join(this.logDir, `${daemonLabel}--${String(this.count).padStart(4, '0')}-${name.replace(/[^\w.-]/g, '_')}`)
      : path.join(dirs.dir, 'log');
    return { stdout: `${base}.stdout`, stderr: `${base}.stderr` };
  }

  remove() {
    if (!this.keep) fs.rmSync(this.root, { recursive: true, force: true });
  }
}

function baseEnvironment(scratch, daemon, dirs, mark) {
  return {
    PATH: `${scratch.binDir(daemon)}:${SYSTEM_PATH}`,
    HOME: dirs.home,
    TMPDIR: dirs.tmp,
    XDG_RUNTIME_DIR: dirs.runtime,
    LANG: 'C.UTF-8',
    // Nothing may reach the machine's real system bus by accident.
    DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${path.join(dirs.dir, 'no-system-bus')}`,
    DBUS_TEST_DAEMON: daemon.path,
    G_TEST_DBUS_DAEMON: daemon.path,
    [MARK_VAR]: mark,
  };
}

// How the daemon under test shows up in /proc: the paths it is started by
// (argv) and the command names (at most 15 characters) its process has.
function daemonNames(scratch, daemon) {
  const names = new Set([daemon.path, path.join(scratch.binDir(daemon), 'dbus-daemon'), 'dbus-daemon']);
  const comms = new Set(['dbus-daemon', path.basename(daemon.path).slice(0, 15)]);
  try {
    const real = fs.realpathSync(daemon.path);
    names.add(real);
    comms.add(path.basename(real).slice(0, 15));
    // A script runs as its interpreter ("#!/usr/bin/env node" -> "node").
    const buf = Buffer.alloc(256);
    const fd = fs.openSync(real, 'r');
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    fs.closeSync(fd);
    const head = buf.toString('latin1', 0, n);
    const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(head);
    if (m) comms.add(path.basename(path.basename(m[1]) === 'env' && m[2] ? m[2] : m[1]).slice(0, 15));
  } catch {
    // existence was checked before the run
  }
  return { names, comms };
}

function openLog(file) {
  return fs.openSync(file, 'a');
}

// Starts a session bus at $XDG_RUNTIME_DIR/bus, the way a user session
// would have one, and resolves once it printed its address.
function startSessionBus(daemon, env, dirs, logFd, timeoutMs) {
  return new Promise((resolve) => {
    const address = `unix:path=${path.join(dirs.runtime, 'bus')}`;
    const child = spawn(daemon.path,
      ['--session', `--address=${address}`, '--nofork', '--nopidfile', '--print-address=1'],
      { cwd: dirs.tmp, env, detached: true, stdio: ['ignore', 'pipe', logFd] });
    let out = '';
    let settled = false;
    const finish = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, why: `session bus printed no address within ${timeoutMs / 1000}s` }), timeoutMs);
    child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.includes('\n')) finish({ ok: true, address, pid: child.pid });
    });
    child.on('error', (e) => finish({ ok: false, why: `session bus could not start: ${e.message}` }));
    child.on('exit', (code, sig) => finish({ ok: false, why: `session bus exited (${sig || `status ${code}`}) before printing its address` }));
  });
}

/**
 * Runs `exe args` for `daemon` and resolves with what it reported.
 * opts: { name, env (extra variables), cwd, idleMs, hardMs, sessionBus }
 */
async function invoke(scratch, daemon, exe, args, opts) {
  const dirs = scratch.newInvocationDir(opts.name);
  const mark = `${scratch.runId}-${scratch.count}`;
  const env = { ...baseEnvironment(scratch, daemon, dirs, mark), ...(opts.env || {}) };
  const logs = scratch.logFiles(dirs, daemon.label, opts.name);
  const outFd = openLog(logs.stdout);
  const errFd = openLog(logs.stderr);
  fs.writeSync(errFd, `# ${exe} ${args.join(' ')}\n`);
  const started = Date.now();
  const tap = new TapReader();
  const result = { tap, code: null, signal: null, timedOut: null, setupError: null, leftovers: 0, logs };
  let child = null;
  let open = true; // output arriving after we finished is dropped
  active.set(mark, 0);

  try {
    if (opts.sessionBus) {
      const bus = await startSessionBus(daemon, env, dirs, errFd, 20000);
      if (!bus.ok) {
        result.setupError = bus.why;
        return result;
      }
      env.DBUS_SESSION_BUS_ADDRESS = bus.address;
    }

    await new Promise((resolve) => {
      try {
        // detached: the child calls setsid() and leads its own session.
        child = spawn(exe, args, { cwd: opts.cwd || dirs.tmp, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        result.setupError = `cannot start ${exe}: ${e.message}`;
        resolve();
        return;
      }
      result.pid = child.pid;
      active.set(mark, child.pid);
      let idleTimer = null;
      const stop = (why) => {
        if (result.timedOut || result.code !== null || result.signal !== null) return;
        result.timedOut = why;
        // The process group first; reap() below catches everything else.
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      };
      const touch = () => {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => stop('idle'), opts.idleMs);
      };
      const hardTimer = setTimeout(() => stop('hard'), opts.hardMs);
      // The dbus tests wait forever for the address of a daemon that failed
      // to start. Rather than sit out the idle timeout for each of those,
      // stop when the program has been silent for a while since the last
      // instance of the daemon ended and none is running.
      let lastOutput = Date.now();
      let daemonsWereRunning = false;
      let lastDaemonGone = null;
      const { names, comms } = daemonNames(scratch, daemon);
      const watch = opts.daemonGoneMs ? setInterval(() => {
        const { live, dead } = daemonState(mark, child.pid, names, comms);
        if (live) {
          daemonsWereRunning = true;
          lastDaemonGone = null;
        } else if ((daemonsWereRunning || dead) && lastDaemonGone === null) {
          daemonsWereRunning = false;
          lastDaemonGone = Date.now();
        }
        if (lastDaemonGone && Date.now() - Math.max(lastDaemonGone, lastOutput) >= opts.daemonGoneMs) stop('daemon-gone');
      }, 200) : null;
      const clearTimers = () => {
        clearTimeout(idleTimer);
        clearTimeout(hardTimer);
        if (watch) clearInterval(watch);
      };
      touch();
      child.stdout.on('data', (d) => { if (!open) return; touch(); lastOutput = Date.now(); tap.feed(d.toString()); fs.writeSync(outFd, d); });
      child.stderr.on('data', (d) => { if (!open) return; touch(); lastOutput = Date.now(); fs.writeSync(errFd, d); });
      child.on('error', (e) => {
        result.setupError = `cannot start ${exe}: ${e.message}`;
        clearTimers();
        resolve();
      });
      // 'exit', not 'close': a forked daemon may keep our pipes open forever.
      child.on('exit', (code, sig) => {
        clearTimers();
        if (!result.timedOut) {
          result.code = code;
          result.signal = sig;
        }
        // Give output already in the pipe a moment to arrive.
        let done = false;
        const finish = () => { if (!done) { done = true; resolve(); } };
        child.stdout.once('end', () => setTimeout(finish, 10));
        setTimeout(finish, 300);
      });
    });
  } finally {
    result.leftovers = await reap(mark, result.pid);
    if (child) {
      // Once everything is dead the pipes reach EOF; wait for that briefly.
      const c = child;
      await new Promise((resolve) => {
        if (c.stdout.readableEnded) { resolve(); return; }
        c.stdout.once('end', resolve);
        setTimeout(resolve, 500);
      });
      open = false;
      c.stdout.destroy();
      c.stderr.destroy();
    }
    open = false;
    tap.end();
    active.delete(mark);
    result.durationMs = Date.now() - started;
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
  return result;
}

async function reapActive() {
  for (const [mark, pid] of active) await reap(mark, pid, { graceMs: 500 });
}

module.exports = { Scratch, invoke, reapActive, SYSTEM_PATH };
