/**
 * Compiles the <policy> blocks of a BusConfig into the plain structure the
 * native bus evaluates (kdbus-native/engine/policy.h): every rule classified
 * and its wildcards ("*") turned into "anything", users and groups resolved
 * to numeric ids, blocks grouped by scope in document order. Rules that
 * dbus-daemon would refuse make compilation fail with `FILE:LINE: reason`;
 * unknown users and groups are reported and their rules left out, as
 * dbus-daemon does.
 */
import { ConfigError } from '../config/loader';
import type { BusConfig, Policy, PolicyRule } from '../config/types';
import { Accounts, systemAccounts } from './accounts';
import { attributeMap, isWildcard, MAX_FDS, MESSAGE_TYPES, parseCInt, ruleKind, ruleProblem } from './validate';

export type RuleKind = 'send' | 'receive' | 'own' | 'own_prefix' | 'user' | 'group';

export interface CompiledRule {
  allow: boolean;
  kind: RuleKind;
  /** D-Bus message type (1..4); absent: any. */
  type?: number;
  interface?: string;
  member?: string;
  error?: string;
  path?: string;
  /** send_destination(_prefix), receive_sender, or the own/own_prefix name; absent: any. */
  name?: string;
  /** name is a send_destination_prefix */
  namePrefix?: boolean;
  /** send_broadcast; absent: either. */
  broadcast?: boolean;
  requestedReply: boolean;
  eavesdrop: boolean;
  log: boolean;
  minFds: number;
  maxFds: number;
  /** user/group rules: the uid or gid; absent: "*". */
  id?: number;
  /** Where the rule was written, `FILE:LINE`. */
  origin: string;
}

export interface CompiledBlock {
  id: number;
  rules: CompiledRule[];
}

/**
 * In evaluation order per connection: defaultRules, groupRules of each of
 * its groups, userRules of its uid, noConsoleRules (nobody is considered to
 * be at the console, so consoleRules never apply), mandatoryRules.
 */
export interface CompiledPolicy {
  defaultRules: CompiledRule[];
  mandatoryRules: CompiledRule[];
  userRules: CompiledBlock[];
  groupRules: CompiledBlock[];
  consoleRules: CompiledRule[];
  noConsoleRules: CompiledRule[];
}

export interface CompileOptions {
  accounts?: Accounts;
  warn?: (message: string) => void;
}

function fail(rule: { location: { file: string; line: number } }, reason: string): never {
  throw new ConfigError(reason, rule.location);
}

function wild(v: string | undefined): string | undefined {
  return v === undefined || isWildcard(v) ? undefined : v;
}

/** One <allow>/<deny>; undefined when it names an unknown user or group. */
export function compileRule(rule: PolicyRule, accounts: Accounts, warn: (m: string) => void): CompiledRule | undefined {
  const problem = ruleProblem(rule);
  if (problem !== undefined) fail(rule, problem);
  const a = attributeMap(rule);
  const kind = ruleKind(a) as RuleKind;
  const allow = rule.kind === 'allow';
  const out: CompiledRule = {
    allow,
    kind,
    // Allow rules concern requested replies, deny rules unrequested ones, unless told.
    requestedReply: allow,
    eavesdrop: a.get('eavesdrop') === 'true',
    log: a.get('log') === 'true',
    minFds: 0,
    maxFds: MAX_FDS,
    origin: `${rule.location.file}:${rule.location.line}`,
  };
  if (kind === 'send' || kind === 'receive') {
    const p = kind;
    const type = wild(a.get(`${p}_type`));
    if (type !== undefined) out.type = MESSAGE_TYPES[type];
    for (const field of ['interface', 'member', 'error', 'path'] as const) {
      const v = wild(a.get(`${p}_${field}`));
      if (v !== undefined) out[field] = v;
    }
    const requested = a.get(`${p}_requested_reply`);
    if (requested !== undefined) out.requestedReply = requested === 'true';
    if (a.has('max_fds')) out.maxFds = parseCInt(a.get('max_fds') as string) as number;
    if (a.has('min_fds')) out.minFds = parseCInt(a.get('min_fds') as string) as number;
    if (p === 'send') {
      const dest = wild(a.get('send_destination'));
      const prefix = a.get('send_destination_prefix');
      if (dest !== undefined) out.name = dest;
      else if (prefix !== undefined) {
        out.name = prefix;
        out.namePrefix = true;
      }
      const broadcast = a.get('send_broadcast');
      if (broadcast !== undefined) out.broadcast = broadcast === 'true';
    } else {
      const sender = wild(a.get('receive_sender'));
      if (sender !== undefined) out.name = sender;
    }
    return out;
  }
  if (kind === 'own') {
    const name = wild(a.get('own'));
    if (name !== undefined) out.name = name;
    return out;
  }
  if (kind === 'own_prefix') {
    out.name = a.get('own_prefix') as string;
    return out;
  }
  const who = a.get(kind) as string;
  if (isWildcard(who)) return out;
  const id = kind === 'user' ? accounts.uid(who) : accounts.gid(who);
  if (id === undefined) {
    warn(`Unknown ${kind === 'user' ? 'username' : 'group'} "${who}" on element <${rule.kind}>`);
    return undefined;
  }
  out.id = id;
  return out;
}

function compileBlock(policy: Policy, accounts: Accounts, warn: (m: string) => void, perClient: string | undefined): CompiledRule[] {
  const rules: CompiledRule[] = [];
  for (const r of policy.rules) {
    const c = compileRule(r, accounts, warn);
    if (c === undefined) continue;
    if (perClient !== undefined && (c.kind === 'user' || c.kind === 'group')) {
      fail(r, `<${r.kind}> rule cannot be per-${perClient} because it has bus-global semantics`);
    }
    rules.push(c);
  }
  return rules;
}

function addBlock(blocks: CompiledBlock[], id: number, rules: CompiledRule[]): void {
  const existing = blocks.find((b) => b.id === id);
  if (existing) existing.rules.push(...rules);
  else blocks.push({ id, rules });
}

export function compilePolicy(config: Pick<BusConfig, 'policies'>, options: CompileOptions = {}): CompiledPolicy {
  const accounts = options.accounts ?? systemAccounts();
  const warn = options.warn ?? ((m: string) => process.stderr.write(`${m}\n`));
  const out: CompiledPolicy = {
    defaultRules: [],
    mandatoryRules: [],
    userRules: [],
    groupRules: [],
    consoleRules: [],
    noConsoleRules: [],
  };
  for (const p of config.policies) {
    const scope = p.scope;
    switch (scope.kind) {
      case 'default':
        out.defaultRules.push(...compileBlock(p, accounts, warn, undefined));
        break;
      case 'mandatory':
        out.mandatoryRules.push(...compileBlock(p, accounts, warn, undefined));
        break;
      case 'at_console':
        (scope.atConsole ? out.consoleRules : out.noConsoleRules).push(...compileBlock(p, accounts, warn, undefined));
        break;
      case 'user':
      case 'group': {
        const name = scope.kind === 'user' ? scope.user : scope.group;
        const id = isWildcard(name) ? undefined : scope.kind === 'user' ? accounts.uid(name) : accounts.gid(name);
        if (id === undefined) {
          // dbus-daemon ignores the block, though its rules must still be valid.
          if (!isWildcard(name)) {
            warn(`Unknown ${scope.kind === 'user' ? 'username' : 'group'} "${name}" in message bus configuration file`);
          }
          for (const r of p.rules) {
            const problem = ruleProblem(r);
            if (problem !== undefined) fail(r, problem);
          }
          break;
        }
        const rules = compileBlock(p, accounts, warn, scope.kind);
        addBlock(scope.kind === 'user' ? out.userRules : out.groupRules, id, rules);
        break;
      }
    }
  }
  return out;
}
