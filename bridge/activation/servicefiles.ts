/**
 * Activation service files: `[D-BUS Service]` desktop-style files named
 * *.service in the configured service directories. A broken file is
 * reported and left out; it never stops the others from being read.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isValidBusName } from '../driver/names';

export interface ServiceEntry {
  name: string;
  exec: string;
  user?: string;
  systemdService?: string;
  assumedAppArmorLabel?: string;
  /** The file it came from, for diagnostics. */
  file: string;
}

const SECTION = 'D-BUS Service';
const KEY = /^[A-Za-z0-9-]+$/;

class ServiceFileError extends Error {}

/** Undoes the desktop-entry escapes (\s \n \t \r \\) in a value. */
function unescape(value: string, line: number): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = value[++i];
    switch (next) {
      case 's':
        out += ' ';
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case '\\':
        out += '\\';
        break;
      default:
        throw new ServiceFileError(`line ${line}: invalid escape sequence`);
    }
  }
  return out;
}

/** Sections → key → value, as the file says them. */
function parseDesktopFile(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i].replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      if (!line.endsWith(']') || line.length < 3) throw new ServiceFileError(`line ${lineNo}: invalid section header`);
      const name = line.slice(1, -1);
      if (sections.has(name)) throw new ServiceFileError(`line ${lineNo}: duplicate section [${name}]`);
      current = new Map();
      sections.set(name, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new ServiceFileError(`line ${lineNo}: not a key=value line`);
    const key = line.slice(0, eq).trim();
    if (!KEY.test(key)) throw new ServiceFileError(`line ${lineNo}: invalid key "${key}"`);
    if (current === undefined) throw new ServiceFileError(`line ${lineNo}: key outside of any section`);
    if (current.has(key)) throw new ServiceFileError(`line ${lineNo}: duplicate key ${key}`);
    current.set(key, unescape(line.slice(eq + 1).trim(), lineNo));
  }
  return sections;
}

/** Reads one service file; throws with the reason it is unusable. */
export function parseServiceFile(file: string, text: string): ServiceEntry {
  const keys = parseDesktopFile(text).get(SECTION);
  if (keys === undefined) throw new ServiceFileError(`no [${SECTION}] section`);
  const name = keys.get('Name');
  if (name === undefined) throw new ServiceFileError('missing Name key');
  if (!isValidBusName(name) || name.startsWith(':')) throw new ServiceFileError(`"${name}" is not a valid well-known bus name`);
  const exec = keys.get('Exec');
  if (exec === undefined) throw new ServiceFileError('missing Exec key');
  return {
    name,
    exec,
    user: keys.get('User'),
    systemdService: keys.get('SystemdService'),
    assumedAppArmorLabel: keys.get('AssumedAppArmorLabel'),
    file,
  };
}

/**
 * Every usable entry from `dirs`, by bus name. The first directory that
 * provides a name wins, as with dbus-daemon; within one directory a second
 * file for the same name is an error. Missing directories are not an error.
 */
export function loadServiceFiles(dirs: readonly string[], warn: (message: string) => void): Map<string, ServiceEntry> {
  const entries = new Map<string, ServiceEntry>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.service')).sort();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') warn(`Unable to read service directory ${dir}: ${(e as Error).message}`);
      continue;
    }
    const inThisDir = new Set<string>();
    for (const n of names) {
      const file = path.join(dir, n);
      let entry: ServiceEntry;
      try {
        entry = parseServiceFile(file, fs.readFileSync(file, 'utf8'));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EISDIR') continue;
        warn(`Unable to load service file ${file}: ${(e as Error).message}`);
        continue;
      }
      if (inThisDir.has(entry.name)) {
        warn(`Unable to load service file ${file}: service ${entry.name} already exists in ${dir}`);
        continue;
      }
      inThisDir.add(entry.name);
      if (!entries.has(entry.name)) entries.set(entry.name, entry);
    }
  }
  return entries;
}
