#!/usr/bin/env node
// Compares the checklist results of each bus with the reference bus's
// (the first one named) and writes the lane's result.
//   compare.js RESULTS_DIR LANE_JSON SECONDS REFERENCE OTHER... [--measure BUS...]
// A check passes for a bus when it is ok and its detail is the reference's;
// it fails on any difference. A check that fails the same way on the
// reference too is the image's, not the bus's: counted as skipped. Buses
// after --measure are only measured. Lines "own NAME ok|fail DETAIL" are a
// bus's own checks of what the reference does not do: they count as they are.
'use strict';
const fs = require('fs');
const path = require('path');

const [dir, jsonOut, seconds, reference, ...rest] = process.argv.slice(2);
const split = rest.indexOf('--measure');
const others = split < 0 ? rest : rest.slice(0, split);
const measured = split < 0 ? [] : rest.slice(split + 1);

function read(bus) {
  const file = path.join(dir, bus, 'checks.txt');
  const checks = new Map();
  const own = new Map();
  const metrics = new Map();
  let done = false;
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    // no result: the machine did not boot or the checklist did not run
  }
  for (const line of text.split('\n')) {
    const m = /^check (\S+) (ok|fail) ?(.*)$/.exec(line);
    if (m) checks.set(m[1], { ok: m[2] === 'ok', detail: m[3] });
    const o = /^own (\S+) (ok|fail) ?(.*)$/.exec(line);
    if (o) own.set(o[1], { ok: o[2] === 'ok', detail: o[3] });
    const k = /^metric (\S+) ?(.*)$/.exec(line);
    if (k) metrics.set(k[1], k[2]);
    if (line === 'done') done = true;
  }
  return { checks, own, metrics, done };
}

const ref = read(reference);
const failures = [];
let passed = 0;
let skipped = 0;
const notes = [];
if (!ref.done) failures.push(`${reference}: the checklist did not complete`);
for (const bus of others) {
  const got = read(bus);
  if (!got.done) failures.push(`${bus}: the checklist did not complete`);
  const names = new Set([...ref.checks.keys(), ...got.checks.keys()]);
  for (const name of names) {
    const a = ref.checks.get(name);
    const b = got.checks.get(name);
    const same = a && b && a.ok === b.ok && a.detail === b.detail;
    const show = (c) => (c ? `${c.ok ? 'ok' : 'fail'} ${c.detail}` : 'missing');
    if (same && b.ok) {
      passed++;
      console.log(`  ok    ${bus} ${name}`);
    } else if (same) {
      skipped++;
      notes.push(`${name} fails on ${reference} too`);
      console.log(`  skip  ${bus} ${name}: fails on both: ${show(b)}`);
    } else {
      failures.push(`${bus} ${name}: ${show(b)} where ${reference} gives: ${show(a)}`);
      console.log(`  FAIL  ${bus} ${name}\n        ${bus}: ${show(b)}\n        ${reference}: ${show(a)}`);
    }
  }
  for (const [name, c] of got.own) {
    if (c.ok) {
      passed++;
      console.log(`  ok    ${bus} ${name} (its own): ${c.detail}`);
    } else {
      failures.push(`${bus} ${name}: ${c.detail}`);
      console.log(`  FAIL  ${bus} ${name} (its own)\n        ${c.detail}`);
    }
  }
}

console.log('\nmeasurements:');
const all = [reference, ...others, ...measured].map((bus) => [bus, bus === reference ? ref : read(bus)]);
const metricNames = new Set(all.flatMap(([, r]) => [...r.metrics.keys()]));
for (const name of metricNames) {
  console.log(`  ${name}`);
  for (const [bus, r] of all) console.log(`    ${bus.padEnd(14)} ${r.metrics.get(name) ?? '-'}`);
}

const result = {
  lane: 'system',
  passed,
  failed: failures.length,
  skipped,
  seconds: Number(seconds),
  failures,
  note: notes.length ? notes.join('; ') : undefined,
};
if (jsonOut) fs.writeFileSync(jsonOut, `${JSON.stringify(result)}\n`);
console.log(`\nsystem lane: ${passed} passed, ${failures.length} failed, ${skipped} skipped`);
process.exit(failures.length ? 1 : 0);
