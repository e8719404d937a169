'use strict';
// Runs one test program against one daemon and turns what it reported into
// pass/fail/skip counts. Rules: "ok" passes, "not ok" fails, SKIP and
// "not ok # TODO" skip, "1..0 # SKIP" is one skip; subtests that were
// planned but never reported failed; a program printing no TAP counts once
// by its exit status (0 pass, 77 skip, anything else fail).
//
// A GLib-harness program that dies or hangs part-way would hide every later
// subtest behind one crash. For those the unreported subtests are looked up
// with -l: the first one (they run in registration order) is blamed, and the
// rest are run again with -p, until every planned subtest is accounted for.
//
// A subtest the catalogue marks `isolate` runs in a process of its own (-p)
// and is skipped (-s) in the run of the rest: see the catalogue for why.

const fs = require('fs');
const { invoke } = require('./sandbox');

const MAX_RESUMES = 64;

function describeEnd(inv, opts) {
  if (inv.setupError) return inv.setupError;
  if (inv.timedOut === 'idle') return `hung: no output for ${opts.idleMs / 1000}s`;
  if (inv.timedOut === 'hard') return `timed out after ${opts.hardMs / 1000}s`;
  if (inv.timedOut === 'daemon-gone') return `hung: no output for ${opts.daemonGoneMs / 1000}s since the daemon exited`;
  if (inv.tap.bailOut) return `Bail out! ${inv.tap.bailOut}`;
  if (inv.signal) return `killed by ${inv.signal}`;
  return `exited with status ${inv.code}`;
}

async function listSubtests(scratch, daemon, test, opts) {
  const inv = await invoke(scratch, daemon, test.exe, ['-l'], {
    name: `${test.name}-list`, env: test.env, idleMs: opts.idleMs, hardMs: 60000,
  });
  if (inv.code !== 0) return null;
  const text = fs.readFileSync(inv.logs.stdout, 'utf8');
  return text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/'));
}

async function runProgram(scratch, daemon, test, opts) {
  const started = Date.now();
  const outcome = { suite: test.suite, name: test.name, pass: 0, fail: 0, skip: 0, failures: [], invocations: 0, seconds: 0, logs: [] };
  const seen = new Set();
  const record = (name, status, reason) => {
    outcome[status] += 1;
    if (status === 'fail') outcome.failures.push({ name, reason });
  };

  const run = async (args) => {
    outcome.invocations += 1;
    const inv = await invoke(scratch, daemon, test.exe, args, {
      name: test.name, env: { ...test.env, ...(opts.flaky ? { DEB_ALLOW_FLAKY_TESTS: '1' } : {}) },
      idleMs: opts.idleMs, hardMs: opts.hardMs, daemonGoneMs: opts.daemonGoneMs, sessionBus: test.sessionBus,
    });
    outcome.logs.push(inv.logs);
    return inv;
  };

  const isolated = [];
  for (const p of test.isolate || []) isolated.push({ path: p, inv: await run(['--tap', '-p', p]) });
  let inv = await run([...test.args, ...(test.isolate || []).flatMap((p) => ['-s', p])]);
  const tap = inv.tap;
  if (inv.setupError) {
    record('(setup)', 'fail', inv.setupError);
  } else if (!tap.sawTap) {
    if (inv.code === 0) record('(exit status)', 'pass');
    else if (inv.code === 77) record('(exit status)', 'skip');
    else record('(exit status)', 'fail', describeEnd(inv, opts));
  } else if (tap.skipAll !== null && tap.results.length === 0) {
    record('(whole program)', 'skip');
  } else {
    const planned = tap.plan;
    let accounted = 0;
    const take = (t) => {
      for (const r of t.results) {
        if (seen.has(r.name) && r.name.startsWith('/')) continue; // a -p prefix may re-run a subtest
        seen.add(r.name);
        accounted += 1;
        record(r.name, r.status, r.status === 'fail' ? (r.directive || 'not ok') : undefined);
      }
    };
    const abnormal = (i) => Boolean(i.timedOut || i.signal || i.tap.bailOut || (i.code !== 0 && i.code !== 77));
    // Before the main run's results, whose "# SKIP by request" lines for
    // these paths are then already seen.
    for (const { path: p, inv: own } of isolated) {
      take(own.tap);
      if (!seen.has(p)) {
        seen.add(p);
        accounted += 1;
        record(p, 'fail', describeEnd(own, opts));
      } else if (abnormal(own) && !outcome.failures.some((f) => f.name === p)) {
        record(`${p} (after the subtest)`, 'fail', describeEnd(own, opts));
      }
    }
    take(tap);
    // With -p, GLib prints the plan only at the end, so a resumed run is
    // judged against the paths it was given rather than its plan.
    let expectedNow = null;
    const incomplete = (i) => {
      if (expectedNow) return expectedNow.some((p) => !seen.has(p));
      return i.tap.plan !== null ? i.tap.results.length < i.tap.plan : abnormal(i);
    };

    let listing = null;
    let resumes = 0;
    while (test.kind === 'gtest' && incomplete(inv) && resumes < MAX_RESUMES) {
      if (listing === null) listing = (await listSubtests(scratch, daemon, test, opts)) || [];
      const remaining = listing.filter((p) => !seen.has(p));
      if (remaining.length === 0) break;
      seen.add(remaining[0]);
      accounted += 1;
      record(remaining[0], 'fail', describeEnd(inv, opts));
      const rest = remaining.slice(1);
      if (rest.length === 0) break;
      resumes += 1;
      inv = await run(['--tap', ...rest.flatMap((p) => ['-p', p])]);
      expectedNow = rest;
      if (inv.setupError) break;
      take(inv.tap);
    }

    const expected = Math.max(planned || 0, listing ? listing.length : 0, accounted);
    const lost = expected - accounted;
    if (lost > 0) {
      for (let i = 0; i < lost; i++) record(`(unreported subtest ${accounted + i + 1} of ${expected})`, 'fail', describeEnd(inv, opts));
    } else if (outcome.fail === 0 && abnormal(inv)) {
      // Every subtest passed, but the program then crashed, hung or failed
      // (e.g. the bus would not shut down): that is a failure too.
      record('(after last subtest)', 'fail', describeEnd(inv, opts));
    }
  }
  outcome.seconds = (Date.now() - started) / 1000;
  return outcome;
}

module.exports = { runProgram };
