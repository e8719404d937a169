#!/usr/bin/env node
'use strict';
// Runs again (up to twice), against kdbus-bridge only, every third-party test
// program that had a failing subtest, and puts the last run's result in place
// of the first in the results file. Timing-sensitive GLib tests can lose a race
// on a loaded machine; a failure that repeats stays a failure, and every
// retry is printed.
//
//   node .ci/retry-suites.js RESULTS.json DAEMON

const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [file, daemon] = process.argv.slice(2);
const results = JSON.parse(fs.readFileSync(file, 'utf8'));
const ours = results.daemons[0];
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (let attempt = 1; attempt <= 2; attempt++) {
  const failing = ours.tests.filter((t) => t.fail > 0);
  if (failing.length === 0) break;
  const only = `^(${failing.map((t) => escape(`${t.suite}/${t.name}`)).join('|')})$`;
  const retryFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kdbus-bridge-retry-')), 'retry.json');
  console.log(`retry ${attempt}: ${failing.map((t) => `${t.suite}/${t.name}`).join(', ')}`);
  spawnSync('compat/suites/run', ['--daemon', `${ours.label}=${daemon}`, '--only', only, '--json', retryFile], {
    stdio: 'inherit',
  });
  let retry;
  try {
    retry = JSON.parse(fs.readFileSync(retryFile, 'utf8')).daemons[0];
  } catch {
    console.log('retry produced no results; the earlier run stands');
    break;
  }
  for (const again of retry.tests) {
    const i = ours.tests.findIndex((t) => t.suite === again.suite && t.name === again.name);
    if (i < 0) continue;
    const before = ours.tests[i];
    console.log(`${again.suite}/${again.name}: before ${before.pass}/${before.fail}/${before.skip}, retry ${again.pass}/${again.fail}/${again.skip}`);
    ours.tests[i] = again;
  }
}
for (const k of ['pass', 'fail', 'skip']) ours.totals[k] = ours.tests.reduce((n, t) => n + t[k], 0);
fs.writeFileSync(file, JSON.stringify(results));
