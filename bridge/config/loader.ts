/**
 * Reads a busconfig file (and whatever it includes) into a BusConfig.
 *
 * Element handling follows dbus-daemon's configuration parser: the same
 * elements, attributes and error wording, includes merged where they appear,
 * limits carried through includes, <includedir> files that fail to parse
 * reported and skipped. Unlike dbus-daemon every error also says which file
 * and line it is about.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseXml, textContent, XmlElement, XmlSyntaxError } from './xml';
import { checkLimit, defaultLimits } from './limits';
import { parseCLong } from './numbers';
import { standardSessionServiceDirs, standardSystemServiceDirs } from './servicedirs';
import { ruleProblem } from '../policy/validate';
import type { ApparmorMode, BusConfig, Policy, PolicyRule, PolicyScope, SourceLocation } from './types';

export class ConfigError extends Error {
  constructor(
    readonly reason: string,
    readonly location?: SourceLocation,
    /** Set when the file itself could not be found, which <include ignore_missing="yes"> tolerates. */
    readonly fileNotFound = false,
  ) {
    super(location ? `${location.file}:${location.line}: ${reason}` : reason);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Receives non-fatal problems (unknown users, broken files in an <includedir>). */
  warn?: (message: string) => void;
  /** Environment for <standard_session_servicedirs/>; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Told every file and directory the result depends on, stat'ed before it
   * is read (so a change during the read shows as a newer stamp), and every
   * path whose absence it depends on.
   */
  onSource?: (source: ConfigSource) => void;
}

export type ConfigSource =
  | { kind: 'file' | 'dir'; path: string; stat: fs.BigIntStats }
  | { kind: 'absent'; path: string };

/** Elements whose text is their value; dbus-daemon insists they have some. */
const CONTENT_ELEMENTS = new Set([
  'user',
  'type',
  'listen',
  'pidfile',
  'auth',
  'servicedir',
  'servicehelper',
  'include',
  'includedir',
  'limit',
]);

const RULE_ATTRIBUTES = new Set([
  'send_interface',
  'send_member',
  'send_error',
  'send_destination',
  'send_destination_prefix',
  'send_broadcast',
  'send_path',
  'send_type',
  'receive_interface',
  'receive_member',
  'receive_error',
  'receive_sender',
  'receive_path',
  'receive_type',
  'eavesdrop',
  'send_requested_reply',
  'receive_requested_reply',
  'own',
  'own_prefix',
  'user',
  'group',
  'log',
  'max_fds',
  'min_fds',
]);

interface LoadState {
  config: BusConfig;
  /** Files currently being read, outermost first, to refuse include cycles. */
  stack: string[];
  warn: (message: string) => void;
  env: NodeJS.ProcessEnv;
  onSource: (source: ConfigSource) => void;
}

function locate(file: string, el: { line: number }): SourceLocation {
  return { file, line: el.line };
}

function fail(file: string, el: { line: number }, reason: string): never {
  throw new ConfigError(reason, locate(file, el));
}

/** dbus-daemon's locate_attributes: only the named attributes may appear. */
function attributes(file: string, el: XmlElement, allowed: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const { name, value } of el.attributes) {
    if (!allowed.includes(name)) {
      fail(file, el, `Attribute "${name}" is invalid on <${el.name}> element in this context`);
    }
    found.set(name, value);
  }
  return found;
}

function yesNo(file: string, el: XmlElement, attrs: Map<string, string>, name: string): boolean {
  const v = attrs.get(name);
  if (v === undefined || v === 'no') return false;
  if (v === 'yes') return true;
  fail(file, el, `${name} attribute must have value "yes" or "no"`);
}

function checkNoText(file: string, el: XmlElement): void {
  for (const child of el.children) {
    if (child.kind === 'text' && child.value.trim() !== '') {
      fail(file, child, `No text content expected inside XML element ${el.name} in configuration file`);
    }
  }
}

function checkLeaf(file: string, el: XmlElement): string {
  const child = el.children.find((c): c is XmlElement => c.kind === 'element');
  if (child) fail(file, child, `Element <${child.name}> is not allowed in this context`);
  const content = textContent(el);
  if (CONTENT_ELEMENTS.has(el.name) && content.length === 0) {
    fail(file, el, `XML element <${el.name}> was expected to have content inside it`);
  }
  return content;
}

function checkEmpty(file: string, el: XmlElement): void {
  checkLeaf(file, el);
  checkNoText(file, el);
}

function resolvePath(basedir: string, p: string): string {
  return path.isAbsolute(p) ? p : path.join(basedir, p);
}

function addServiceDir(config: BusConfig, dir: string): void {
  if (!config.serviceDirs.includes(dir)) config.serviceDirs.push(dir);
}

function readConfigText(state: LoadState, file: string): string {
  let text: string;
  try {
    const st = fs.statSync(file, { bigint: true });
    if (!st.isFile()) throw new ConfigError(`"${file}" is not a regular file`);
    text = fs.readFileSync(file, 'utf8');
    state.onSource({ kind: 'file', path: file, stat: st });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') state.onSource({ kind: 'absent', path: file });
    const why = err.code === 'ENOENT' ? 'No such file or directory' : err.code === 'EACCES' ? 'Permission denied' : err.message;
    throw new ConfigError(`Failed to open "${file}": ${why}`, undefined, err.code === 'ENOENT');
  }
  return text;
}

function loadFile(state: LoadState, file: string, isTopLevel: boolean): void {
  if (state.stack.includes(file)) {
    throw new ConfigError(`Circular inclusion of file '${file}'`);
  }
  const text = readConfigText(state, file);
  let doc;
  try {
    doc = parseXml(text, file);
  } catch (e) {
    if (e instanceof XmlSyntaxError) throw new ConfigError(e.reason, { file: e.file, line: e.line });
    throw e;
  }
  if (doc.root.name !== 'busconfig') {
    fail(file, doc.root, `Unknown element <${doc.root.name}> at root of configuration file`);
  }
  attributes(file, doc.root, []);
  checkNoText(file, doc.root);

  state.stack.push(file);
  try {
    const basedir = path.dirname(file);
    for (const child of doc.root.children) {
      if (child.kind === 'element') busconfigChild(state, file, basedir, child);
    }
  } finally {
    state.stack.pop();
  }

  if (isTopLevel && state.config.listen.length === 0) {
    throw new ConfigError('Configuration file needs one or more <listen> elements giving addresses', {
      file,
      line: doc.root.line,
    });
  }
}

function busconfigChild(state: LoadState, file: string, basedir: string, el: XmlElement): void {
  const config = state.config;
  switch (el.name) {
    case 'user':
      attributes(file, el, []);
      config.user = checkLeaf(file, el);
      return;
    case 'type':
      attributes(file, el, []);
      config.type = checkLeaf(file, el);
      return;
    case 'fork':
      attributes(file, el, []);
      checkEmpty(file, el);
      config.fork = true;
      return;
    case 'keep_umask':
      attributes(file, el, []);
      checkEmpty(file, el);
      config.keepUmask = true;
      return;
    case 'syslog':
      attributes(file, el, []);
      checkEmpty(file, el);
      config.syslog = true;
      return;
    case 'allow_anonymous':
      attributes(file, el, []);
      checkEmpty(file, el);
      config.allowAnonymous = true;
      return;
    case 'pidfile':
      attributes(file, el, []);
      config.pidfile = checkLeaf(file, el);
      return;
    case 'listen':
      attributes(file, el, []);
      config.listen.push(checkLeaf(file, el));
      return;
    case 'auth':
      attributes(file, el, []);
      config.auth.push(checkLeaf(file, el));
      return;
    case 'servicedir':
      attributes(file, el, []);
      addServiceDir(config, resolvePath(basedir, checkLeaf(file, el)));
      return;
    case 'servicehelper':
      attributes(file, el, []);
      config.serviceHelper = resolvePath(basedir, checkLeaf(file, el));
      return;
    case 'standard_session_servicedirs':
      attributes(file, el, []);
      checkEmpty(file, el);
      for (const dir of standardSessionServiceDirs(state.env)) addServiceDir(config, dir);
      return;
    case 'standard_system_servicedirs':
      attributes(file, el, []);
      checkEmpty(file, el);
      for (const dir of standardSystemServiceDirs()) addServiceDir(config, dir);
      return;
    case 'include':
      include(state, file, basedir, el);
      return;
    case 'includedir':
      attributes(file, el, []);
      includeDir(state, resolvePath(basedir, checkLeaf(file, el)), file, el);
      return;
    case 'limit':
      limit(state, file, el);
      return;
    case 'policy':
      policy(state, file, el);
      return;
    case 'selinux':
      selinux(state, file, el);
      return;
    case 'apparmor': {
      const attrs = attributes(file, el, ['mode']);
      checkEmpty(file, el);
      const mode = attrs.get('mode');
      if (mode !== undefined) {
        if (mode !== 'required' && mode !== 'enabled' && mode !== 'disabled') {
          fail(file, el, `Mode attribute on <apparmor> must have value "required", "enabled" or "disabled", not "${mode}"`);
        }
        config.apparmorMode = mode as ApparmorMode;
      }
      return;
    }
    default:
      fail(file, el, `Element <${el.name}> not allowed inside <busconfig> in configuration file`);
  }
}

function include(state: LoadState, file: string, basedir: string, el: XmlElement): void {
  const attrs = attributes(file, el, ['ignore_missing', 'if_selinux_enabled', 'selinux_root_relative']);
  const ignoreMissing = yesNo(file, el, attrs, 'ignore_missing');
  const ifSelinux = yesNo(file, el, attrs, 'if_selinux_enabled');
  const selinuxRootRelative = yesNo(file, el, attrs, 'selinux_root_relative');
  const content = checkLeaf(file, el);
  // This bus never runs with SELinux support, so SELinux-only includes are
  // skipped exactly as dbus-daemon skips them on a machine without SELinux.
  if (ifSelinux) return;
  if (selinuxRootRelative) fail(file, el, 'Could not determine SELinux policy root for relative inclusion');
  const target = resolvePath(basedir, content);
  try {
    loadFile(state, target, false);
  } catch (e) {
    if (e instanceof ConfigError && e.fileNotFound && ignoreMissing) return;
    if (e instanceof ConfigError && !e.location) throw new ConfigError(e.reason, locate(file, el), e.fileNotFound);
    throw e;
  }
}

function includeDir(state: LoadState, dir: string, file: string, el: XmlElement): void {
  let entries: string[];
  try {
    const st = fs.statSync(dir, { bigint: true });
    entries = fs.readdirSync(dir);
    state.onSource({ kind: 'dir', path: dir, stat: st });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      state.onSource({ kind: 'absent', path: dir });
      return;
    }
    fail(file, el, `Failed to read directory "${dir}": ${(e as Error).message}`);
  }
  // Sorted so that the merge order, and thus policy precedence, does not
  // depend on the file system's directory order.
  for (const name of entries.filter((n) => n.endsWith('.conf')).sort()) {
    const full = path.join(dir, name);
    // A broken drop-in must not take the whole bus down: report and go on,
    // keeping whatever the file had contributed before its error.
    const snapshot = structuredClone(state.config);
    try {
      loadFile(state, full, false);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      state.config = snapshot;
      state.warn(`Encountered error '${e.message}' while parsing '${full}'`);
    }
  }
  if (!state.config.includeDirs.includes(dir)) state.config.includeDirs.push(dir);
}

function limit(state: LoadState, file: string, el: XmlElement): void {
  const attrs = attributes(file, el, ['name']);
  const name = attrs.get('name');
  if (name === undefined) fail(file, el, '<limit> element must have a "name" attribute');
  const content = checkLeaf(file, el);
  const parsed = parseCLong(content);
  if (!parsed) fail(file, el, `<limit name="${name}"> element has invalid value (could not parse as integer)`);
  const problem = checkLimit(name, parsed.value);
  if (problem) fail(file, el, problem);
  (state.config.limits as Record<string, number>)[name] = parsed.value;
}

function policyScope(state: LoadState, file: string, el: XmlElement): PolicyScope {
  const attrs = attributes(file, el, ['context', 'user', 'group', 'at_console']);
  if (attrs.size !== 1) {
    fail(file, el, '<policy> element must have exactly one of (context|user|group|at_console) attributes');
  }
  const context = attrs.get('context');
  if (context !== undefined) {
    if (context === 'default' || context === 'mandatory') return { kind: context };
    fail(file, el, `context attribute on <policy> must have the value "default" or "mandatory", not "${context}"`);
  }
  const user = attrs.get('user');
  if (user !== undefined) return { kind: 'user', user };
  const group = attrs.get('group');
  if (group !== undefined) return { kind: 'group', group };
  const atConsole = attrs.get('at_console') as string;
  if (atConsole !== 'true' && atConsole !== 'false') {
    fail(file, el, `Unknown value "${atConsole}" for at_console in message bus configuration file`);
  }
  return { kind: 'at_console', atConsole: atConsole === 'true' };
}

function policy(state: LoadState, file: string, el: XmlElement): void {
  const scope = policyScope(state, file, el);
  checkNoText(file, el);
  const rules: PolicyRule[] = [];
  for (const child of el.children) {
    if (child.kind !== 'element') continue;
    if (child.name !== 'allow' && child.name !== 'deny') {
      fail(file, child, `Element <${child.name}> not allowed inside <policy> in configuration file`);
    }
    rules.push(rule(file, child));
  }
  const p: Policy = { scope, rules, location: locate(file, el) };
  state.config.policies.push(p);
}

function rule(file: string, el: XmlElement): PolicyRule {
  const attrs: Array<[string, string]> = [];
  for (const { name, value } of el.attributes) {
    if (!RULE_ATTRIBUTES.has(name)) {
      fail(file, el, `Attribute "${name}" is invalid on <${el.name}> element in this context`);
    }
    attrs.push([name, value]);
  }
  if (attrs.every(([name]) => name === 'log')) {
    fail(file, el, `Element <${el.name}> must have one or more attributes`);
  }
  const has = (n: string): boolean => attrs.some(([name]) => name === n);
  if ((has('send_member') && !has('send_interface') && !has('send_path')) ||
      (has('receive_member') && !has('receive_interface') && !has('receive_path'))) {
    fail(
      file,
      el,
      `On element <${el.name}>, if you specify a member you must specify an interface or a path. Keep in mind that not all messages have an interface field.`,
    );
  }
  const parsed: PolicyRule = { kind: el.name as 'allow' | 'deny', attributes: attrs, location: locate(file, el) };
  const problem = ruleProblem(parsed);
  if (problem !== undefined) fail(file, el, problem);
  checkEmpty(file, el);
  return parsed;
}

function selinux(state: LoadState, file: string, el: XmlElement): void {
  attributes(file, el, []);
  checkNoText(file, el);
  for (const child of el.children) {
    if (child.kind !== 'element') continue;
    if (child.name !== 'associate') {
      fail(file, child, `Element <${child.name}> not allowed inside <selinux> in configuration file`);
    }
    const attrs = attributes(file, child, ['own', 'context']);
    const own = attrs.get('own');
    const context = attrs.get('context');
    if (own === undefined || context === undefined) {
      fail(file, child, 'Element <associate> must have attributes own="<servicename>" and context="<selinux context>"');
    }
    checkEmpty(file, child);
    state.config.selinuxAssociations.push({ own, context, location: locate(file, child) });
  }
}

function emptyConfig(file: string): BusConfig {
  return {
    file,
    listen: [],
    auth: [],
    allowAnonymous: false,
    fork: false,
    keepUmask: false,
    syslog: false,
    serviceDirs: [],
    includeDirs: [],
    limits: defaultLimits(),
    policies: [],
    selinuxAssociations: [],
  };
}

/**
 * Loads a configuration file and everything it includes.
 * Throws ConfigError whose message is `FILE:LINE: reason` (or just the reason
 * when no place in a file is to blame, e.g. the top file does not exist).
 */
export function loadConfig(file: string, options: LoadOptions = {}): BusConfig {
  const state: LoadState = {
    config: emptyConfig(file),
    stack: [],
    warn: options.warn ?? ((m) => process.stderr.write(`${m}\n`)),
    env: options.env ?? process.env,
    onSource: options.onSource ?? (() => undefined),
  };
  loadFile(state, file, true);
  return state.config;
}
