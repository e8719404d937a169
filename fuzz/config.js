#!/usr/bin/env node
'use strict';
// A mutation fuzzer for the busconfig reader (bridge/config): mutated seed
// configurations are loaded from a file, and each must either load or throw
// the reader's ConfigError naming a file and a line. Any other exception
// fails, and so does a load that never returns (the loads run in a worker
// that a watchdog in the main thread observes).
//   node fuzz/config.js --seconds N --seeds DIR --crashes DIR [--seed N]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const kHangMs = 10000;

function parseArgs(argv) {
  const args = { seconds: 30, seeds: path.join(__dirname, 'corpus', 'config'), crashes: '.', seed: Date.now() };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args)) throw new Error(`unknown option ${argv[i]}`);
    args[key] = key === 'seeds' || key === 'crashes' ? argv[i + 1] : Number(argv[i + 1]);
  }
  return args;
}

// Pieces of the format, so that mutations reach deep into the reader
// rather than failing at the first angle bracket.
const kTokens = [
  '<busconfig>', '</busconfig>', '<policy context="default">', '<policy user="root">', '<policy group="x">',
  '<policy at_console="true">', '</policy>', '<allow own="*"/>', '<deny send_interface="a.b"/>',
  '<allow send_destination="org.x" send_type="signal"/>', '<allow eavesdrop="true"/>',
  '<limit name="max_incoming_bytes">', '<limit name="max_match_rules_per_connection">', '</limit>',
  '<include>', '<include ignore_missing="yes">', '</include>', '<includedir>', '</includedir>', 'fuzz.conf', '.',
  '<listen>', '</listen>', '<type>', '</type>', '<user>', '</user>', '<servicedir>', '</servicedir>',
  '<auth>', '</auth>', '<pidfile>', '</pidfile>', '<apparmor mode="required"/>', '<selinux>', '</selinux>',
  '<associate own="a" context="b"/>', '<standard_session_servicedirs/>', '<standard_system_servicedirs/>',
  '<fork/>', '<syslog/>', '<keep_umask/>', '<allow_anonymous/>', '<servicehelper>', '</servicehelper>',
  '<!DOCTYPE busconfig>', '<?xml version="1.0"?>', '<!--', '-->', '<![CDATA[', ']]>', '&amp;', '&lt;', '&#65;',
  '&#x10FFFF;', '&#0;', '&bogus;', '"', "'", '=', '/>', '>', '<', '\n', ' ', '\t', '\r\n', '\u00e9', '\ufeff',
  '\0', '-1', '0x7fffffff', '99999999999999999999', '1e9', '*', 'yes', 'no', 'true', 'false',
];

function makeRng(seed) {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return n > 0 ? s % n : 0;
  };
}

function mutate(text, seeds, rnd) {
  let t = text;
  const rounds = 1 + rnd(6);
  for (let r = 0; r < rounds; ++r) {
    // Mostly between elements, so that mutants pass the XML syntax and
    // reach the elements' own checks.
    let at = rnd(t.length + 1);
    if (rnd(4) !== 0) {
      const next = t.indexOf('>', at);
      at = next >= 0 ? next + 1 : t.length;
    }
    switch (rnd(7)) {
      case 0: t = t.slice(0, at) + kTokens[rnd(kTokens.length)] + t.slice(at); break;
      case 1: t = t.slice(0, at) + t.slice(at + 1 + rnd(40)); break;
      case 2: { const from = rnd(t.length); t = t.slice(0, at) + t.slice(from, from + 1 + rnd(80)) + t.slice(at); break; }
      case 3: t = t.slice(0, at) + String.fromCharCode(rnd(128)) + t.slice(at + 1); break;
      case 4: { const other = seeds[rnd(seeds.length)]; const from = rnd(other.length); t = t.slice(0, at) + other.slice(from, from + 1 + rnd(200)) + t.slice(at); break; }
      case 5: t = t.slice(0, at) + String.fromCharCode(rnd(0x10000)) + t.slice(at); break;
      default: t = t.slice(0, at) + kTokens[rnd(kTokens.length)].repeat(1 + rnd(30)) + t.slice(at); break;
    }
  }
  return t;
}

function check(loadConfig, ConfigError, file, dir) {
  try {
    loadConfig(file, { warn: () => {}, env: { HOME: dir, XDG_DATA_HOME: dir, XDG_DATA_DIRS: dir } });
    return 'loaded';
  } catch (e) {
    if (!(e instanceof ConfigError)) return `threw something other than ConfigError: ${e && e.stack ? e.stack : e}`;
    const loc = e.location;
    if (!loc || typeof loc.file !== 'string' || !loc.file || !(loc.line >= 1)) {
      return `ConfigError without a file and line: ${e.message}`;
    }
    if (!e.message.startsWith(`${loc.file}:${loc.line}: `)) return `ConfigError message does not start with FILE:LINE: ${e.message}`;
    return 'refused';
  }
}

if (isMainThread) {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.crashes, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdbus-bridge-fuzz-config.'));
  const progress = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(__filename, { workerData: { ...args, dir, progress } });
  let last = -1;
  let stalled = 0;
  let done = false;
  const file = path.join(dir, 'fuzz.conf');
  const finish = (code, message) => {
    if (done) return;
    done = true;
    clearInterval(watchdog);
    if (message) {
      const saved = path.join(args.crashes, `config-${Date.now()}.conf`);
      try { fs.copyFileSync(file, saved); } catch { /* nothing written yet */ }
      console.error(`fuzz: config: ${message}; input saved as ${saved}`);
    }
    console.log(`config: ${Atomics.load(progress, 0)} inputs in ${args.seconds} s (rng seed ${args.seed})`);
    worker.terminate().finally(() => {
      fs.rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    });
  };
  const watchdog = setInterval(() => {
    const now = Atomics.load(progress, 0);
    stalled = now === last ? stalled + 1000 : 0;
    last = now;
    if (stalled >= kHangMs) finish(1, `a load has not returned for ${kHangMs / 1000} s`);
  }, 1000);
  worker.on('message', (m) => {
    console.log(`config: ${m.loaded} loaded, ${m.refused} refused with a ConfigError`);
    finish(m.failure ? 1 : 0, m.failure);
  });
  worker.on('error', (e) => finish(1, `the fuzzer itself failed: ${e.stack}`));
} else {
  const { seconds, seeds: seedDir, dir, progress, seed } = workerData;
  const { loadConfig, ConfigError } = require('../dist/bridge/config');
  const seeds = fs.readdirSync(seedDir).sort().map((f) => fs.readFileSync(path.join(seedDir, f), 'utf8'));
  const rnd = makeRng(seed);
  const file = path.join(dir, 'fuzz.conf');
  fs.mkdirSync(path.join(dir, 'system.d'), { recursive: true });
  const deadline = Date.now() + seconds * 1000;
  let failure = null;
  let loaded = 0;
  let refused = 0;
  // The seeds as they are, then mutants until time is up.
  for (let i = 0; !failure && (i < seeds.length || Date.now() < deadline); ++i) {
    const text = i < seeds.length ? seeds[i] : mutate(seeds[rnd(seeds.length)], seeds, rnd);
    fs.writeFileSync(file, text);
    // Now and then the included directory holds a mutant too.
    if (rnd(8) === 0) fs.writeFileSync(path.join(dir, 'system.d', 'a.conf'), mutate(seeds[rnd(seeds.length)], seeds, rnd));
    const outcome = check(loadConfig, ConfigError, file, dir);
    if (outcome === 'loaded') loaded += 1;
    else if (outcome === 'refused') refused += 1;
    else failure = outcome;
    Atomics.add(progress, 0, 1);
  }
  parentPort.postMessage({ failure, loaded, refused });
}
