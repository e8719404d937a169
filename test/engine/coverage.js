#!/usr/bin/env node
'use strict';
// Line coverage of kdbus-native/engine/ by the engine suite and a short
// model run: builds with gcc --coverage, runs both, merges gcov's JSON over
// every object (a header's lines count once, covered if any object ran
// them) and prints "engine line coverage: X%".
//
//   node test/engine/coverage.js [--files] [--uncovered FILE.cc]
//
// Needs gcc's gcov (it comes with g++).

const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const here = __dirname;
const engine = path.resolve(here, '../../kdbus-native/engine');
const obj = path.join(here, 'out/coverage/obj');

function main(argv) {
  const showFiles = argv.includes('--files');
  const uncoveredIn = argv.includes('--uncovered') ? argv[argv.indexOf('--uncovered') + 1] : null;
  execFileSync(path.join(here, 'build'), ['coverage'], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const f of fs.readdirSync(obj)) if (f.endsWith('.gcda')) fs.unlinkSync(path.join(obj, f));
  const suite = spawnSync(path.join(here, 'out/coverage/suite'), [], { encoding: 'utf8' });
  const model = spawnSync(path.join(here, 'out/coverage/model'), ['--seconds', '3'], { encoding: 'utf8' });
  const lastLine = (s) => (s || '').trim().split('\n').pop();
  console.log(`suite: ${lastLine(suite.stdout)}; model: ${lastLine(model.stdout)}`);

  // file -> line -> executed
  const lines = new Map();
  for (const o of fs.readdirSync(obj).filter((f) => f.endsWith('.o'))) {
    if (!fs.existsSync(path.join(obj, o.replace(/\.o$/, '.gcda')))) continue;
    const out = execFileSync('gcov', ['--json-format', '--stdout', o], { cwd: obj, maxBuffer: 1 << 28, encoding: 'utf8' });
    for (const doc of out.split('\n').filter((l) => l.trim())) {
      for (const file of JSON.parse(doc).files) {
        const abs = path.resolve(here, file.file);
        if (path.dirname(abs) !== engine) continue;
        if (!lines.has(abs)) lines.set(abs, new Map());
        const m = lines.get(abs);
        for (const l of file.lines) m.set(l.line_number, (m.get(l.line_number) || false) || l.count > 0);
      }
    }
  }
  let total = 0;
  let covered = 0;
  for (const [file, m] of [...lines].sort()) {
    const n = m.size;
    if (n === 0) continue;
    const c = [...m.values()].filter(Boolean).length;
    total += n;
    covered += c;
    if (showFiles) console.log(`  ${path.basename(file)}: ${c}/${n} (${((100 * c) / n).toFixed(1)}%)`);
    if (uncoveredIn && path.basename(file) === uncoveredIn) {
      const missing = [...m].filter(([, v]) => !v).map(([k]) => k).sort((a, b) => a - b);
      console.log(`  not run in ${uncoveredIn}: ${missing.join(' ')}`);
    }
  }
  const pct = total === 0 ? 0 : (100 * covered) / total;
  console.log(`engine line coverage: ${pct.toFixed(1)}% (${covered} of ${total} lines)`);
  return suite.status === 0 && model.status === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
