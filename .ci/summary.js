#!/usr/bin/env node
'use strict';
// Runs jest and ends its output with one line, "N passed, M failed", summed
// over every suite, so that `npm test` and CI report the same numbers.
//
//   node .ci/summary.js [jest arguments...]   run jest, then print the line
//   node .ci/summary.js --report FILE         print the line for a jest --json file
//
// The JSON result is written to $KDBUS_BRIDGE_TEST_RESULTS when set, else to
// a temporary file that is removed afterwards.

const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function count(resultsFile) {
  let results;
  try {
    results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  } catch (e) {
    return null;
  }
  let passed = 0;
  let failed = 0;
  for (const suite of results.testResults || []) {
    const tests = suite.assertionResults || [];
    passed += tests.filter((t) => t.status === 'passed').length;
    failed += tests.filter((t) => t.status === 'failed').length;
    // A suite that could not run (a compile error, a throwing beforeAll with
    // no tests reported) would otherwise vanish from the count.
    if (suite.status === 'failed' && !tests.some((t) => t.status === 'failed')) failed += 1;
  }
  return { passed, failed };
}

function line(counts) {
  return `${counts.passed} passed, ${counts.failed} failed`;
}

function main(argv) {
  if (argv[0] === '--report') {
    const counts = count(argv[1]);
    if (counts === null) {
      console.log('0 passed, 1 failed');
      return 1;
    }
    console.log(line(counts));
    return counts.failed === 0 ? 0 : 1;
  }

  const explicit = process.env.KDBUS_BRIDGE_TEST_RESULTS;
  const scratch = explicit ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'kdbus-bridge-jest-'));
  const resultsFile = explicit || path.join(scratch, 'results.json');
  const jest = require.resolve('jest/bin/jest');
  const run = spawnSync(process.execPath, [jest, '--runInBand', '--json', `--outputFile=${resultsFile}`, ...argv], {
    stdio: 'inherit',
  });
  const counts = count(resultsFile);
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  if (counts === null) {
    // jest died before writing results: that is one failure, not zero.
    console.log('0 passed, 1 failed');
    return 1;
  }
  console.log(line(counts));
  return run.status === 0 && counts.failed === 0 ? 0 : 1;
}

module.exports = { count };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
