#!/usr/bin/env node
'use strict';
// Runs the engine's own suite (test/engine/run) and jest, and ends the
// output with one line, "N passed, M failed", summed over both, so that
// `npm test` and CI report the same numbers.
//
//   node .ci/summary.js [jest arguments...]   run both, then print the line
//                                             (with arguments: only those jest suites)
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

// The engine suite's counts from the last line of test/engine/run.
function engineCounts() {
  const run = spawnSync(path.join(__dirname, '..', 'test', 'engine', 'run'), [], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  process.stdout.write(run.stdout || '');
  const last = (run.stdout || '').trim().split('\n').pop();
  const m = /^(\d+) passed, (\d+) failed$/.exec(last || '');
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : { passed: 0, failed: 1 };
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

  // The jest JSON file stays jest's alone: CI counts the engine suite in its
  // own lane (.ci/lanes/30-engine).
  const engine = argv.length === 0 ? engineCounts() : { passed: 0, failed: 0 };
  if (argv.length === 0) console.log(`engine suite: ${line(engine)}`);
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
    console.log(line({ passed: engine.passed, failed: engine.failed + 1 }));
    return 1;
  }
  console.log(line({ passed: counts.passed + engine.passed, failed: counts.failed + engine.failed }));
  return run.status === 0 && counts.failed === 0 && engine.failed === 0 ? 0 : 1;
}

module.exports = { count, engineCounts };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
