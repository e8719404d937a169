'use strict';
// The Markdown table of a matrix run, shared by the native and the Docker runner.

const MARK = { pass: '✓', fail: '✗', 'n/a': '–' };

// `failures: false` leaves out the list of failure reasons (the README carries
// only the table and points at the full results). `skipped` lists the clients
// that could not be run, [{client, reason}], so that none vanishes unexplained.
function markdown(buses, clients, scenarios, cells, { failures = true, skipped = [] } = {}) {
  const key = (b, c, s) => `${b}\u0000${c}\u0000${s}`;
  const at = new Map(cells.map((x) => [key(x.bus, x.client, x.scenario), x]));
  const lines = [];
  lines.push(`Each cell: ${buses.join(' / ')} (✓ pass, ✗ fail, – n/a)`);
  lines.push('');
  lines.push(`| client | implementation | ${scenarios.join(' | ')} |`);
  lines.push(`|---|---|${scenarios.map(() => '---').join('|')}|`);
  for (const c of clients) {
    const row = scenarios.map((s) => buses.map((b) => MARK[(at.get(key(b, c.name, s)) || {}).result] || '?').join(''));
    lines.push(`| ${c.name} | ${c.implementation} | ${row.join(' | ')} |`);
  }
  if (skipped.length) {
    lines.push('');
    lines.push('Not run:');
    lines.push('');
    for (const x of skipped) lines.push(`- ${x.client}: ${x.reason.replace(/\|/g, '/')}`);
  }
  const notes = failures ? cells.filter((x) => x.result === 'fail') : [];
  if (notes.length) {
    lines.push('');
    lines.push('Failures:');
    lines.push('');
    for (const x of notes) lines.push(`- ${x.bus} · ${x.client} · ${x.scenario}: ${x.reason.replace(/\|/g, '/')}`);
  }
  return lines.join('\n') + '\n';
}

const START = '<!-- compat-matrix:start -->';
const END = '<!-- compat-matrix:end -->';

// Replaces what lies between the two marker lines of `text` with `block`;
// throws when the markers are missing, doubled or out of order, so that a
// README is never half rewritten.
function replaceBetweenMarkers(text, block, { start = START, end = END } = {}) {
  const lines = text.split('\n');
  const at = (marker) => lines.reduce((found, line, i) => (line.trim() === marker ? [...found, i] : found), []);
  const starts = at(start);
  const ends = at(end);
  if (starts.length !== 1 || ends.length !== 1 || ends[0] < starts[0]) {
    throw new Error(`needs exactly one "${start}" line followed by one "${end}" line`);
  }
  const body = block.replace(/\n+$/, '').split('\n');
  return [...lines.slice(0, starts[0] + 1), '', ...body, '', ...lines.slice(ends[0])].join('\n');
}

module.exports = { markdown, replaceBetweenMarkers, START, END };
