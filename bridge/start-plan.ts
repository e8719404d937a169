/**
 * The start plan the native launcher (kdbus-native/launcher/plan.cc) reads:
 * what this configuration says about listening, forking, the pid file and
 * the user, with a stamp of every file and directory it was read from, and
 * of this program's own configuration reader. While every stamp matches,
 * the launcher may bind and print the address before Node.js is loaded.
 *
 * Written after a successful start, only when it changed, atomically, in a
 * directory private to the user; a plan that cannot be written costs only
 * speed, so failures are silent.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { BusConfig, ConfigSource } from './config';

const MAGIC = 'kdbus-bridge start plan 1';

/** Where plans live; '' for nowhere. Kept in step with plan.cc's cache_dir(). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env.KDBUS_BRIDGE_CACHE_DIR;
  if (chosen !== undefined) return chosen;
  if (process.geteuid?.() === 0) return '/var/cache/kdbus-bridge';
  if (env.XDG_CACHE_HOME?.startsWith('/')) return path.join(env.XDG_CACHE_HOME, 'kdbus-bridge');
  if (env.HOME?.startsWith('/')) return path.join(env.HOME, '.cache', 'kdbus-bridge');
  return '';
}

export function planFile(dir: string, configFile: string): string {
  return path.join(dir, `plan-${createHash('sha1').update(configFile).digest('hex')}`);
}

/** D-Bus address escaping (as the launcher unescapes): no blanks or line breaks survive. */
function escape(value: string): string {
  let out = '';
  for (const b of Buffer.from(value)) {
    const c = String.fromCharCode(b);
    out += /[-0-9A-Za-z_/.\\*]/.test(c) ? c : `%${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

function stamp(st: fs.BigIntStats): string {
  return `${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
}

/** Our own configuration reader: a new version may read the same files differently. */
function readerSources(): ConfigSource[] {
  const sources: ConfigSource[] = [];
  const dir = path.join(__dirname, 'config');
  for (const file of [__filename, path.join(__dirname, 'cli.js'), path.join(__dirname, 'main.js'), ...fs.readdirSync(dir).map((n) => path.join(dir, n))]) {
    if (!file.endsWith('.js')) continue;
    sources.push({ kind: 'file', path: file, stat: fs.statSync(file, { bigint: true }) });
  }
  return sources;
}

export function planText(configFile: string, config: BusConfig, sources: readonly ConfigSource[]): string {
  const lines = [
    MAGIC,
    `config ${escape(configFile)}`,
    `fork ${config.fork ? 1 : 0}`,
    `user ${config.user !== undefined ? 1 : 0}`,
    `pidfile ${config.pidfile !== undefined ? 1 : 0}`,
    ...config.listen.map((a) => `listen ${escape(a)}`),
  ];
  const seen = new Set<string>();
  for (const s of [...sources, ...readerSources()]) {
    const line = s.kind === 'absent' ? `absent ${escape(s.path)}` : `${s.kind} ${escape(s.path)} ${stamp(s.stat)}`;
    if (seen.has(line)) continue;
    seen.add(line);
    lines.push(line);
  }
  lines.push('end', '');
  return lines.join('\n');
}

/** A configuration passed as a descriptor (a memfd) is new every time: no plan. */
function plannable(configFile: string): boolean {
  return path.isAbsolute(configFile) && !configFile.startsWith('/proc/') && !configFile.startsWith('/dev/');
}

export function writeStartPlan(configFile: string, config: BusConfig, sources: readonly ConfigSource[]): void {
  const dir = cacheDir();
  if (dir === '' || !plannable(configFile)) return;
  try {
    const text = planText(configFile, config, sources);
    const file = planFile(dir, configFile);
    let previous: string | undefined;
    try {
      previous = fs.readFileSync(file, 'utf8');
    } catch {
      // none yet
    }
    if (previous === text) return;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (previous === undefined) prune(dir);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, text, { mode: 0o600 });
      fs.renameSync(tmp, file);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  } catch {
    // Only the next start's speed depends on it.
  }
}

/** Plans of configuration files that are gone (a test's, a removed bus's) would only pile up. */
function prune(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith('plan-')) continue;
    const file = path.join(dir, name);
    try {
      const m = /^config (\S+)$/m.exec(fs.readFileSync(file, 'utf8'));
      if (m && !fs.existsSync(decodeURIComponent(m[1]))) fs.rmSync(file, { force: true });
    } catch {
      // unreadable or removed meanwhile: not ours to worry about
    }
  }
}
