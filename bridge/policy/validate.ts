/**
 * The checks dbus-daemon's configuration parser makes on an <allow> or
 * <deny> element, with its wording (its quirks included: some "Bad value"
 * messages name the attribute where the value should be). Returns the
 * reason an element is refused, or undefined.
 */
import type { PolicyRule } from '../config/types';

export const MAX_FDS = 16;

const SEND = [
  'send_destination',
  'send_destination_prefix',
  'send_broadcast',
  'send_path',
  'send_type',
  'send_interface',
  'send_member',
  'send_error',
  'send_requested_reply',
];
const RECEIVE = [
  'receive_sender',
  'receive_path',
  'receive_type',
  'receive_interface',
  'receive_member',
  'receive_error',
  'receive_requested_reply',
];

export const MESSAGE_TYPES: Record<string, number> = {
  method_call: 1,
  method_return: 2,
  error: 3,
  signal: 4,
};

export function attributeMap(rule: PolicyRule): Map<string, string> {
  return new Map(rule.attributes);
}

export function isWildcard(v: string | undefined): boolean {
  return v === '*';
}

/** Which kind of rule the attributes make, as dbus-daemon classifies them. */
export function ruleKind(a: Map<string, string>): 'send' | 'receive' | 'own' | 'own_prefix' | 'user' | 'group' | undefined {
  const anySend = SEND.some((n) => a.has(n));
  // <allow eavesdrop="true"/> alone is a receive rule.
  const anyReceive = RECEIVE.some((n) => a.has(n)) || (!anySend && a.has('eavesdrop'));
  if (anySend) return 'send';
  if (anyReceive) return 'receive';
  if (a.has('own')) return 'own';
  if (a.has('own_prefix')) return 'own_prefix';
  if (a.has('user')) return 'user';
  if (a.has('group')) return 'group';
  return undefined;
}

/** strtol-like: leading blanks and sign, then digits; what follows is ignored. */
export function parseCInt(v: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?[0-9]+)/.exec(v);
  return m ? Number(m[1]) : undefined;
}

function trueFalse(v: string | undefined): boolean {
  return v === undefined || v === 'true' || v === 'false';
}

function fdsProblem(a: Map<string, string>): string | undefined {
  for (const name of ['max_fds', 'min_fds']) {
    const v = a.get(name);
    if (v === undefined) continue;
    const n = parseCInt(v);
    if (n === undefined || n < 0 || n > MAX_FDS) {
      return `Bad value "${v}" for ${name} attribute, must be an integer in range 0 to ${MAX_FDS} inclusive`;
    }
  }
  return undefined;
}

export function ruleProblem(rule: PolicyRule): string | undefined {
  const el = rule.kind;
  const a = attributeMap(rule);
  const has = (n: string): boolean => a.has(n);
  const anySend = SEND.some(has);
  const anyReceive = RECEIVE.some(has) || (!anySend && has('eavesdrop'));
  const anyMessage = anySend || anyReceive || has('eavesdrop') || has('max_fds') || has('min_fds');
  const others = ['own', 'own_prefix', 'user', 'group'].filter(has).length;

  if (!(anySend || anyReceive || others > 0)) return `Element <${el}> must have one or more attributes`;
  if ((has('send_member') && !has('send_interface') && !has('send_path')) ||
      (has('receive_member') && !has('receive_interface') && !has('receive_path'))) {
    return `On element <${el}>, if you specify a member you must specify an interface or a path. Keep in mind that not all messages have an interface field.`;
  }
  const invalid = `Invalid combination of attributes on element <${el}>: `;
  if (Number(anyMessage) + others > 1) {
    return `${invalid}own, own_prefix, user, group and the message-related attributes cannot be combined`;
  }
  if (anySend && anyReceive) return `${invalid}send and receive attributes cannot be combined`;
  if ((has('send_member') || has('send_interface')) && has('send_error')) {
    return `${invalid}send_error cannot be combined with send_member or send_interface`;
  }
  if (has('send_destination') && has('send_destination_prefix')) {
    return `${invalid}send_destination cannot be combined with send_destination_prefix`;
  }
  if ((has('receive_member') || has('receive_interface')) && has('receive_error')) {
    return `${invalid}receive_error cannot be combined with receive_member or receive_interface`;
  }
  if (!anySend && !anyReceive) return undefined;

  const prefix = anySend ? 'send' : 'receive';
  const type = a.get(`${prefix}_type`);
  if (type !== undefined && !isWildcard(type) && MESSAGE_TYPES[type] === undefined) return `Bad message type "${type}"`;
  const mustBeBool = (v: string, name: string): string => `Bad value "${v}" for ${name} attribute, must be true or false`;
  if (!trueFalse(a.get('eavesdrop'))) return mustBeBool('eavesdrop', a.get('eavesdrop') as string);
  if (anySend) {
    const broadcast = a.get('send_broadcast');
    if (!trueFalse(broadcast)) return mustBeBool(broadcast as string, 'send_broadcast');
    const dest = a.get('send_destination');
    if (dest !== undefined && !isWildcard(dest) && broadcast === 'true') {
      return `Rule with send_broadcast="true" and send_destination="${dest}" cannot match anything`;
    }
  }
  const requested = a.get(`${prefix}_requested_reply`);
  if (!trueFalse(requested)) return mustBeBool(`${prefix}_requested_reply`, requested as string);
  return fdsProblem(a);
}
