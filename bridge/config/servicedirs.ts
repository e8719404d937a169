import * as os from 'os';
import * as path from 'path';

/** Where the distribution's own data lives (dbus's DBUS_DATADIR on Debian). */
const DATADIR = '/usr/share';

function nonEmpty(v: string | undefined): v is string {
  return v !== undefined && v !== '';
}

/**
 * <standard_session_servicedirs/>: the transient directory under
 * $XDG_RUNTIME_DIR first (when that variable is set), then
 * $XDG_DATA_HOME, each of $XDG_DATA_DIRS, and the data directory, each with
 * dbus-1/services appended. Callers de-duplicate.
 */
export function standardSessionServiceDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (nonEmpty(env.XDG_RUNTIME_DIR)) {
    dirs.push(path.join(env.XDG_RUNTIME_DIR, 'dbus-1', 'services'));
  }
  const dataHome = env.XDG_DATA_HOME !== undefined ? env.XDG_DATA_HOME : path.join(env.HOME ?? os.homedir(), '.local', 'share');
  const dataDirs = env.XDG_DATA_DIRS !== undefined ? env.XDG_DATA_DIRS : '/usr/local/share:/usr/share';
  const bases = [dataHome, ...dataDirs.split(':'), DATADIR].filter((b) => b !== '');
  for (const base of bases) dirs.push(path.join(base, 'dbus-1', 'services'));
  return dirs;
}

/** <standard_system_servicedirs/>: fixed, independent of the environment. */
export function standardSystemServiceDirs(): string[] {
  return ['/usr/local/share', '/usr/share', DATADIR, '/lib'].map((base) => path.join(base, 'dbus-1', 'system-services'));
}
