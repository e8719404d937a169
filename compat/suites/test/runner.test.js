'use strict';
// Self-test of the runner's counting, resuming and cleaning up, with
// stand-in test programs (no bus involved: this checks the runner only).
// Run: node --test compat/suites/test/

const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { TapReader } = require('../lib/tap');
const { Scratch } = require('../lib/sandbox');
const { runProgram } = require('../lib/program');
const { MARK_VAR } = require('../lib/procs');

// Live processes started by any invocation of this scratch's run.
function survivors(scratch) {
  const needle = Buffer.from(`${MARK_VAR}=${scratch.runId}-`);
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((pid) => {
    try {
      const state = fs.readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1][0];
      return state !== 'Z' && fs.readFileSync(`/proc/${pid}/environ`).includes(needle);
    } catch {
      return false;
    }
  });
}

const daemon = { label: 'none', path: '/bin/true' };
const opts = { idleMs: 1500, hardMs: 20000, flaky: false };

function script(dir, name, body) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

test('TAP: directives, plans and bail-outs', () => {
  const t = new TapReader();
  t.feed('1..5\nok 1 /a\nnot ok 2 - b # TODO later\nok 3 /c # SKIP nope\nnot');
  t.feed(' ok 4 /d\n# comment\nBail out! broken\n');
  t.end();
  assert.strictEqual(t.plan, 5);
  assert.deepStrictEqual(t.results.map((r) => [r.name, r.status]),
    [['/a', 'pass'], ['b', 'skip'], ['/c', 'skip'], ['/d', 'fail']]);
  assert.strictEqual(t.bailOut, 'broken');
  const s = new TapReader();
  s.feed('1..0 # SKIP - no xvfb\n');
  assert.strictEqual(s.skipAll, 'no xvfb');
});

test('a crash and a hang are blamed on one subtest each, the rest still run', async () => {
  const scratch = new Scratch();
  try {
    const fake = { suite: 'self', name: 'fake-gtest', exe: path.join(__dirname, 'fake-gtest'), args: ['--tap'], kind: 'gtest', env: {} };
    const o = await runProgram(scratch, daemon, fake, opts);
    assert.deepStrictEqual([o.pass, o.fail, o.skip], [4, 3, 1]);
    assert.deepStrictEqual(o.failures.map((f) => f.name), ['/crash', '/fail', '/hang']);
    assert.match(o.failures[0].reason, /SIGSEGV/);
    assert.match(o.failures[2].reason, /hung/);
    // /leak left a setsid()ed process ignoring SIGTERM: it must be gone.
    assert.deepStrictEqual(survivors(scratch), []);
  } finally {
    scratch.remove();
  }
});

test('isolated subtests run alone and count once', async () => {
  const scratch = new Scratch();
  try {
    const fake = {
      suite: 'self', name: 'fake-gtest', exe: path.join(__dirname, 'fake-gtest'), args: ['--tap'], kind: 'gtest', env: {},
      isolate: ['/pass', '/fail'],
    };
    const o = await runProgram(scratch, daemon, fake, opts);
    assert.deepStrictEqual([o.pass, o.fail, o.skip], [4, 3, 1]);
    assert.deepStrictEqual(o.failures.map((f) => f.name).sort(), ['/crash', '/fail', '/hang']);
    assert.ok(o.invocations >= 4, `${o.invocations} invocations`);
  } finally {
    scratch.remove();
  }
});

test('programs without TAP count by exit status; missing subtests fail', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'suites-selftest-'));
  const scratch = new Scratch();
  try {
    const run = (body) => runProgram(scratch, daemon,
      { suite: 'self', name: 's', exe: script(dir, `s${Math.random()}`, body), args: [], kind: 'script', env: {} }, opts);
    const counts = (o) => [o.pass, o.fail, o.skip];
    assert.deepStrictEqual(counts(await run('exit 0')), [1, 0, 0]);
    assert.deepStrictEqual(counts(await run('exit 77')), [0, 0, 1]);
    assert.deepStrictEqual(counts(await run('exit 3')), [0, 1, 0]);
    assert.deepStrictEqual(counts(await run('echo 1..3; echo ok 1; exit 1')), [1, 2, 0]);
    assert.deepStrictEqual(counts(await run('echo 1..1; echo ok 1 a; exit 1')), [1, 1, 0]);
    assert.deepStrictEqual(counts(await run('echo "1..0 # SKIP nothing"')), [0, 0, 1]);
  } finally {
    scratch.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the environment is empty apart from what the suites need', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'suites-selftest-'));
  const scratch = new Scratch();
  try {
    const out = path.join(dir, 'env');
    const body = `env > ${out}; test "$(readlink "$(command -v dbus-daemon)")" = /bin/true`;
    const o = await runProgram(scratch, daemon,
      { suite: 'self', name: 'env', exe: script(dir, 'env.sh', body), args: [], kind: 'script', env: {} }, opts);
    assert.deepStrictEqual([o.pass, o.fail], [1, 0]);
    const names = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => l.split('=')[0]);
    for (const leaked of ['USER', 'SHELL', 'DBUS_SESSION_BUS_ADDRESS', 'DISPLAY']) assert.ok(!names.includes(leaked), leaked);
    for (const needed of ['HOME', 'TMPDIR', 'XDG_RUNTIME_DIR', 'DBUS_TEST_DAEMON', 'G_TEST_DBUS_DAEMON', 'DBUS_SYSTEM_BUS_ADDRESS']) {
      assert.ok(names.includes(needed), needed);
    }
  } finally {
    scratch.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
