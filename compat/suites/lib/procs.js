'use strict';
// Finding and stopping what one test invocation left behind. Daemons fork,
// call setsid() and get activated by other daemons, so neither the process
// group nor the session is enough: every invocation carries a unique marker
// in its environment, which all of its descendants inherit, and we look for
// that marker in /proc/PID/environ. Processes are only ever signalled by PID.

const fs = require('fs');

const MARK_VAR = 'COMPAT_SUITES_MARK';

function statFields(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    return { comm, state: rest[0], pgrp: Number(rest[2]), session: Number(rest[3]) };
  } catch {
    return null;
  }
}

function carriesMark(pid, needle) {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`).includes(needle);
  } catch {
    return false;
  }
}

// PIDs (other than ours) that belong to the invocation: same session as the
// leader it was started as, or carrying its marker. Zombies are skipped:
// they are already dead and their parent's business.
function findMarked(mark, sessionLeader) {
  const needle = Buffer.from(`${MARK_VAR}=${mark}\0`);
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const st = statFields(pid);
    if (!st || st.state === 'Z' || st.state === 'X') continue;
    if ((sessionLeader && st.session === sessionLeader) || carriesMark(pid, needle)) found.push(pid);
  }
  return found;
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function argv(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

// Whether an instance of the daemon under test is running in the
// invocation, and whether one has ended there. A live daemon is recognised
// by its argv: run directly (argv[0]), through an interpreter (a node or
// shell script: argv[1]) or as "dbus-daemon" from PATH. A dead one that its
// parent has not reaped yet is a zombie in the invocation's session, which
// has only its command name left.
function daemonState(mark, sessionLeader, names, comms) {
  const needle = Buffer.from(`${MARK_VAR}=${mark}\0`);
  let live = false;
  let dead = false;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const st = statFields(pid);
    if (!st) continue;
    if (st.state === 'Z') {
      if (st.session === sessionLeader && comms.has(st.comm)) dead = true;
      continue;
    }
    if (st.session !== sessionLeader && !carriesMark(pid, needle)) continue;
    const a = argv(pid);
    if (names.has(a[0]) || names.has(a[1])) live = true;
  }
  return { live, dead };
}

// SIGTERM everything of the invocation, give it a moment, then SIGKILL what
// survived; repeat because a dying process may still have forked.
async function reap(mark, sessionLeader, { graceMs = 2000 } = {}) {
  let killed = 0;
  for (let round = 0; round < 5; round++) {
    if (sessionLeader) signal(-sessionLeader, 'SIGTERM');
    let pids = findMarked(mark, sessionLeader);
    if (pids.length === 0) return killed;
    killed += pids.length;
    for (const pid of pids) signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      await sleep(50);
      pids = findMarked(mark, sessionLeader);
      if (pids.length === 0) return killed;
    }
    if (sessionLeader) signal(-sessionLeader, 'SIGKILL');
    for (const pid of pids) signal(pid, 'SIGKILL');
    await sleep(100);
  }
  return killed;
}

module.exports = { MARK_VAR, findMarked, daemonState, reap };
