'use strict';
// The Markdown table of a matrix run, shared by the native and the Docker runner.

const MARK = { pass: '✓', fail: '✗', 'n/a': '–' };

function markdown(buses, clients, scenarios, cells) {
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
  const notes = cells.filter((x) => x.result === 'fail');
  if (notes.length) {
    lines.push('');
    lines.push('Failures:');
    lines.push('');
    for (const x of notes) lines.push(`- ${x.bus} · ${x.client} · ${x.scenario}: ${x.reason.replace(/\|/g, '/')}`);
  }
  return lines.join('\n') + '\n';
}

module.exports = { markdown };
