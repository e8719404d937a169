'use strict';
// Incremental reader for the TAP that the dbus and GLib test programs print.
// It only records what was reported; turning reports into pass/fail/skip
// counts (and deciding what a missing subtest means) is the caller's job.

const PLAN = /^1\.\.(\d+)\s*(?:#\s*(.*))?$/;
const RESULT = /^(not ok|ok)\b\s*(\d+)?\s*(.*)$/;
const BAIL = /^Bail out!\s*(.*)$/;

// Splits "name # DIRECTIVE reason" at the first unescaped '#'.
function splitDirective(text) {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') { i++; continue; }
    if (text[i] === '#') {
      return { description: text.slice(0, i).trim(), directive: text.slice(i + 1).trim() };
    }
  }
  return { description: text.trim(), directive: '' };
}

function classify(ok, directive) {
  if (/^skip\b/i.test(directive)) return 'skip';
  // A known failure is neither a pass nor a regression: count it as skipped.
  if (/^todo\b/i.test(directive)) return ok ? 'pass' : 'skip';
  return ok ? 'pass' : 'fail';
}

class TapReader {
  constructor() {
    this.plan = null;          // number of planned subtests, null if none seen
    this.skipAll = null;       // reason when the plan is "1..0 # SKIP ..."
    this.results = [];         // { number, name, status, directive }
    this.bailOut = null;       // reason of a "Bail out!" line
    this.pending = '';
  }

  feed(chunk) {
    this.pending += chunk;
    let nl;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      this.line(this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
    }
  }

  end() {
    if (this.pending) this.line(this.pending);
    this.pending = '';
  }

  line(raw) {
    const line = raw.replace(/\r$/, '');
    let m;
    if ((m = PLAN.exec(line))) {
      this.plan = Number(m[1]);
      if (this.plan === 0) this.skipAll = (m[2] || 'no subtests planned').replace(/^skip\b\s*-?\s*/i, '');
      return;
    }
    if ((m = RESULT.exec(line))) {
      const { description, directive } = splitDirective(m[3]);
      const name = description.replace(/^-\s*/, '') || `#${m[2] || this.results.length + 1}`;
      this.results.push({
        number: m[2] ? Number(m[2]) : this.results.length + 1,
        name,
        status: classify(m[1] === 'ok', directive),
        directive,
      });
      return;
    }
    if ((m = BAIL.exec(line)) && this.bailOut === null) this.bailOut = m[1] || 'Bail out!';
  }

  get sawTap() {
    return this.plan !== null || this.results.length > 0 || this.bailOut !== null;
  }
}

module.exports = { TapReader, splitDirective, classify };
