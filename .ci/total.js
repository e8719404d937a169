#!/usr/bin/env node
'use strict';
// Adds up what CI ran: the jest suites, the third-party suites against
// kdbus-bridge (with dbus-daemon beside it) and the client matrix, and ends
// with one line "N passed, M failed, K skipped". Exit status 1 when anything
// failed that is not a listed, explained difference.
//
//   node .ci/total.js --jest FILE [--suites FILE] [--matrix FILE]... [--lane FILE]... [--known FILE]
//
// A lane file is what one of CI's own lanes (fuzzing, sanitizers, abuse,
// the booted system...) wrote: {"lane", "passed", "failed", "skipped",
// "seconds", "failures": [names]}. A lane that wrote nothing counts as one
// failure.

const fs = require('fs');
const { count } = require('./summary');

function args(argv) {
  const o = { jest: null, suites: null, matrix: [], lanes: [], known: null };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[++i];
    if (argv[i - 1] === '--jest') o.jest = v;
    else if (argv[i - 1] === '--suites') o.suites = v;
    else if (argv[i - 1] === '--matrix') o.matrix.push(v);
    else if (argv[i - 1] === '--lane') o.lanes.push(v);
    else if (argv[i - 1] === '--known') o.known = v;
    else throw new Error(`unknown argument ${argv[i - 1]}`);
  }
  return o;
}

function read(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function jestCounts(file) {
  const c = count(file);
  return c === null ? { passed: 0, failed: 1, skipped: 0, note: 'no jest results' } : { ...c, skipped: 0 };
}

// Lines "suite/test /subtest<TAB>reason": differences from dbus-daemon that
// are explained in the README.
function knownList(file) {
  if (!file || !fs.existsSync(file)) return new Map();
  const m = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [key, reason] = line.split('\t');
    m.set(key.trim(), (reason || '').trim());
  }
  return m;
}

function suitesCounts(file, known) {
  const r = read(file);
  if (!r) return { passed: 0, failed: 1, skipped: 0, note: 'no suite results' };
  const ours = r.daemons[0];
  const reference = r.daemons.find((d) => d.label === 'dbus-daemon');
  let failed = 0;
  let explained = 0;
  const unexplained = [];
  for (const t of ours.tests) {
    for (const f of t.failures) {
      const key = `${t.suite}/${t.name} ${f.name}`;
      if (known.has(key)) explained += 1;
      else {
        failed += 1;
        unexplained.push(key);
      }
    }
    failed += Math.max(0, t.fail - t.failures.length);
  }
  const ref = reference ? ` (dbus-daemon: ${reference.totals.pass} passed, ${reference.totals.fail} failed, ${reference.totals.skip} skipped)` : '';
  return {
    passed: ours.totals.pass,
    failed,
    skipped: ours.totals.skip + explained,
    note: `${explained} listed differences${ref}`,
    unexplained,
  };
}

// A cell counts against kdbus-bridge only when the same cell passes on dbus-daemon.
function matrixCounts(file) {
  const r = read(file);
  if (!r) return { passed: 0, failed: 1, skipped: 0, note: `no results in ${file}` };
  const ref = new Map();
  for (const c of r.cells) if (c.bus === 'dbus-daemon') ref.set(`${c.client}|${c.scenario}`, c.result);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const regressions = [];
  for (const c of r.cells) {
    if (c.bus !== 'kdbus-bridge') continue;
    if (c.result === 'pass') passed += 1;
    else if (c.result === 'n/a' || ref.get(`${c.client}|${c.scenario}`) !== 'pass') skipped += 1;
    else {
      failed += 1;
      regressions.push(`${c.client} ${c.scenario}`);
    }
  }
  return { passed, failed, skipped, note: 'cells; a cell that fails on dbus-daemon too is skipped', unexplained: regressions };
}

function laneCounts(file) {
  const r = read(file);
  if (!r) return { name: file.replace(/.*\//, ''), passed: 0, failed: 1, skipped: 0, note: `no results in ${file}` };
  const seconds = typeof r.seconds === 'number' ? `${Math.round(r.seconds)} s` : '';
  return {
    name: r.lane,
    passed: r.passed | 0,
    failed: r.failed | 0,
    skipped: r.skipped | 0,
    note: [seconds, r.note].filter(Boolean).join('; '),
    unexplained: r.failures || [],
  };
}

function main() {
  const o = args(process.argv.slice(2));
  const known = knownList(o.known);
  const parts = [['jest', jestCounts(o.jest)]];
  if (o.suites) parts.push(['third-party suites', suitesCounts(o.suites, known)]);
  for (const m of o.matrix) parts.push([`client matrix (${m.replace(/.*\//, '')})`, matrixCounts(m)]);
  for (const l of o.lanes) {
    const c = laneCounts(l);
    parts.push([c.name, c]);
  }
  const total = { passed: 0, failed: 0, skipped: 0 };
  for (const [name, c] of parts) {
    console.log(`${name}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped${c.note ? ` — ${c.note}` : ''}`);
    for (const u of c.unexplained || []) console.log(`    failed: ${u}`);
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
  }
  console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
  return total.failed === 0 ? 0 : 1;
}

process.exitCode = main();
