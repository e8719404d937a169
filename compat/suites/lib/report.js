'use strict';
// Human-readable and JSON output.

const fs = require('fs');

function programLine(daemon, o) {
  const id = `${o.suite}/${o.name}`;
  return `${daemon.label.padEnd(14)} ${id.padEnd(44)} pass=${o.pass} fail=${o.fail} skip=${o.skip} time=${o.seconds.toFixed(1)}s`;
}

function failureLines(o) {
  return o.failures.map((f) => `    not ok ${f.name}${f.reason ? ` (${f.reason})` : ''}`);
}

function totals(outcomes) {
  const t = { pass: 0, fail: 0, skip: 0, seconds: 0 };
  for (const o of outcomes) {
    t.pass += o.pass;
    t.fail += o.fail;
    t.skip += o.skip;
    t.seconds += o.seconds;
  }
  return t;
}

// One row per test program, one "pass/fail/skip" column per daemon.
function summaryTable(runs) {
  const rows = [];
  const ids = [];
  for (const r of runs) {
    for (const o of r.outcomes) {
      const id = `${o.suite}/${o.name}`;
      if (!ids.includes(id)) ids.push(id);
    }
  }
  const cell = (o) => (o ? `${o.pass}/${o.fail}/${o.skip}` : '-');
  const header = ['test (pass/fail/skip)', ...runs.map((r) => r.daemon.label)];
  rows.push(header);
  for (const id of ids) {
    rows.push([id, ...runs.map((r) => cell(r.outcomes.find((o) => `${o.suite}/${o.name}` === id)))]);
  }
  rows.push(['TOTAL', ...runs.map((r) => cell(totals(r.outcomes)))]);
  const widths = header.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const fmt = (row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const lines = rows.map(fmt);
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  lines.splice(lines.length - 1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines;
}

function writeJson(file, runs, meta) {
  const doc = {
    ...meta,
    daemons: runs.map((r) => ({
      label: r.daemon.label,
      path: r.daemon.path,
      totals: totals(r.outcomes),
      tests: r.outcomes.map((o) => ({
        suite: o.suite, name: o.name, pass: o.pass, fail: o.fail, skip: o.skip,
        seconds: Number(o.seconds.toFixed(2)), invocations: o.invocations, failures: o.failures,
      })),
    })),
  };
  fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
}

module.exports = { programLine, failureLines, summaryTable, totals, writeJson };
