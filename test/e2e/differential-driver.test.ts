// Every method of the bus driver, and messages with unusual headers, sent
// alike to the bus under test and to the reference dbus-daemon: what the
// sender is told (replies, error names, bodies, signals, a disconnect) must
// be the same, but for the differences listed (with their reasons) below.
import { Client, connect, sync } from '../helpers/client';
import { ACTIVATABLE, normaliser, observe, Observed, Pair, Side, startPair } from '../helpers/differential';
import { callFields, Field, HeaderField, MessageType, NO_REPLY_EXPECTED, RawMessage } from '../helpers/wire';

const BUS = 'org.freedesktop.DBus';
const PATH = '/org/freedesktop/DBus';
const STATS = 'org.freedesktop.DBus.Debug.Stats';
const ROLES = ['me', 'other', 'third', 'fresh'];

interface Allowed {
  reason: string;
  /** True when this reason explains the whole difference of this case. */
  explains(label: string, tested: Observed, reference: Observed): boolean;
}

const same = (a: Observed, b: Observed) => canonical(a) === canonical(b);
const STATS_FIGURES = ['ActiveConnections', 'MatchRules', 'BusNames', 'UniqueName'];
/** Only the keys of a{sv} replies that kdbus-bridge reports. */
function onlyKeys(o: Observed, keys: string[]): Observed {
  const trim = (m: unknown) => {
    const r = m as { body?: unknown[] };
    if (!Array.isArray(r.body) || typeof r.body[0] !== 'object' || r.body[0] === null) return m;
    const dict = r.body[0] as Record<string, unknown>;
    return { ...r, body: [Object.fromEntries(Object.entries(dict).filter(([k]) => keys.includes(k)))] };
  };
  return { ...o, replies: o.replies.map(trim) };
}

/** Without the copies of its own method calls a connection was sent. */
function withoutOwnCalls(o: Observed): Observed {
  return { ...o, others: o.others.filter((m) => !((m as { type: number }).type === 1 && (m as { sender?: string }).sender === ':me')) };
}

/**
 * Differences from dbus-daemon that are deliberate or not fixed here, each
 * with its reason (also in README.md). Each one explains only the
 * difference it names: anything else in the same case still fails.
 */
const ALLOWED: Allowed[] = [
  {
    reason: 'dbus-daemon passes method calls addressed to the driver to every connection with a match rule that accepts them, as if they were broadcasts; kdbus-bridge (like dbus-broker) shows them only to monitors',
    explains: (_label, tested, reference) => same(withoutOwnCalls(tested), withoutOwnCalls(reference)),
  },
  {
    reason: 'Debug.Stats reports only the figures that mean the same in the engine (no memory pools, peaks or traffic counters); those it reports have dbus-daemon\'s values',
    explains: (label, tested, reference) =>
      label.includes('Stats.GetStats') || label.includes('Stats.GetConnectionStats')
        ? same(onlyKeys(tested, STATS_FIGURES), onlyKeys(reference, STATS_FIGURES))
        : false,
  },
  {
    reason: 'the bus lists ActivatableServicesChanged in Features, as dbus 1.16 does',
    explains: (label) => /Properties\.Get(All)?\(org\.freedesktop\.DBus(,Features)?\)$/.test(label),
  },
  {
    reason: 'the Interfaces property lists the org.kdbusbridge.Bus1 extension',
    explains: (label) => /Properties\.Get(All)?\(org\.freedesktop\.DBus(,Interfaces)?\)$/.test(label),
  },
  {
    reason: 'GetConnectionCredentials gives ProcessFD, as dbus 1.16 does',
    explains: (label, tested, reference) =>
      label.includes('GetConnectionCredentials(') && same(onlyKeys(tested, ['UnixUserID', 'UnixGroupIDs', 'ProcessID', 'LinuxSecurityLabel']), reference),
  },
  {
    reason: 'the introspection XML is generated from the driver table: the same interfaces and members in another layout',
    explains: (label) => label.startsWith('org.freedesktop.DBus.Introspectable.Introspect()'),
  },
];

type Arg = { sig: string; value: unknown };

interface Case {
  label: string;
  build(names: (n: string) => string): RawMessage;
  awaitReply?: boolean;
  /** Runs on a connection of its own (it may end it). */
  fresh?: boolean;
}

function call(iface: string | undefined, member: string, args: Arg[] = [], opts: { path?: string; destination?: string; flags?: number; label?: string } = {}): Case {
  const path = opts.path ?? PATH;
  const shown = args.map((a) => (typeof a.value === 'string' ? a.value : JSON.stringify(a.value))).join(',');
  return {
    label: opts.label ?? `${iface ? `${iface}.` : ''}${member}(${shown})${path !== PATH ? ` at ${path}` : ''}`,
    build: (names) => ({
      type: MessageType.MethodCall,
      flags: opts.flags ?? 0,
      serial: 0,
      fields: callFields(opts.destination === undefined ? BUS : names(opts.destination), path, iface, member, args.map((a) => a.sig).join('')),
      bodySignature: args.map((a) => a.sig).join(''),
      body: args.map((a) => (typeof a.value === 'string' ? names(a.value) : a.value)),
    }),
  };
}

const s = (value: string): Arg => ({ sig: 's', value });
const u = (value: number): Arg => ({ sig: 'u', value });

// Names of every kind: the bus's, the caller's, other connections', unknown
// unique names, invalid ones, owned, queued, free and activatable ones.
const NAMES = [
  BUS, ':me', ':other', ':1.99999', ':1.99999.x', ':', '', 'a', '.a.b', 'a..b', '1a.b', 'a.b.', 'a.b-c', 'a.b/c',
  `com.${'x'.repeat(252)}`, `com.${'x'.repeat(251)}`, 'com.example.Free', 'com.example.Owned', ACTIVATABLE, 'com.example.Mine',
];
const NAME_METHODS = [
  'NameHasOwner', 'GetNameOwner', 'ListQueuedOwners', 'GetConnectionUnixUser', 'GetConnectionUnixProcessID',
  'GetConnectionCredentials', 'GetAdtAuditSessionData', 'GetConnectionSELinuxSecurityContext',
];
const RULES = [
  "type='signal'", "type='bogus'", "foo='bar'", "arg63='x'", "arg64='x'", "arg0path='/a/'", "eavesdrop='true'", '',
  "sender='org.freedesktop.DBus',member='NameOwnerChanged'", "path_namespace='/'", "path='/a',path_namespace='/a'",
  "arg0namespace='org.example'", "interface='a'", "member='1a'", "type='signal',,", 'type=signal', "type='method_call'",
  "destination=':1.5'", "type='signal',type='signal'", "path='a'", "arg3='it''s'", "type='error'",
];

function driverCases(): Case[] {
  const cases: Case[] = [];
  const D = BUS;
  for (const name of NAMES) {
    for (const m of NAME_METHODS) cases.push(call(D, m, [s(name)]));
    cases.push(call(STATS, 'GetConnectionStats', [s(name)]));
    cases.push({ ...call(D, 'StartServiceByName', [s(name), u(0)]), awaitReply: true });
  }
  cases.push({ ...call(D, 'StartServiceByName', [s('com.example.Free'), u(7)]), awaitReply: true });
  for (const name of NAMES) {
    for (let flags = 0; flags < 8; flags++) cases.push(call(D, 'RequestName', [s(name), u(flags)]));
    cases.push(call(D, 'RequestName', [s(name), u(0x10)]));
  }
  for (const name of NAMES) cases.push(call(D, 'ReleaseName', [s(name)]));
  for (const m of ['ListNames', 'ListActivatableNames', 'GetId', 'Hello', 'ReloadConfig']) cases.push(call(D, m));
  for (const rule of RULES) cases.push(call(D, 'AddMatch', [s(rule)]));
  for (const rule of RULES) cases.push(call(D, 'RemoveMatch', [s(rule)]));
  cases.push(call(D, 'RemoveMatch', [s("type='signal'")]));
  for (const env of [[], [['FOO', 'bar']], [['DBUS_STARTER_ADDRESS', 'x']], [['', 'x']], [['A=B', 'x']]]) {
    cases.push(call(D, 'UpdateActivationEnvironment', [{ sig: 'a{ss}', value: env }]));
  }
  cases.push(call(D, 'UpdateActivationEnvironment', [{ sig: 'a{ss}', value: [] }], { path: '/' }));
  cases.push(call(STATS, 'GetStats'), call(STATS, 'GetAllMatchRules'));
  for (const path of [PATH, '/', '/org/freedesktop/DBus/x']) {
    cases.push(call('org.freedesktop.DBus.Peer', 'Ping', [], { path }), call('org.freedesktop.DBus.Peer', 'GetMachineId', [], { path }));
    cases.push(call('org.freedesktop.DBus.Introspectable', 'Introspect', [], { path }));
    cases.push(call(D, 'GetId', [], { path }), call(STATS, 'GetAllMatchRules', [], { path }));
    // ListNames is answered by the addon, the other shapes of it by the driver.
    cases.push(call(D, 'ListNames', [], { path }), call(undefined, 'ListNames', [], { path, label: `ListNames() without interface at ${path}` }));
    cases.push(call(D, 'ListNames', [], { path, flags: NO_REPLY_EXPECTED, label: `ListNames() with NO_REPLY_EXPECTED at ${path}` }));
    cases.push(call('org.freedesktop.DBus.Peer', 'ListNames', [], { path }));
    // So is GetNameOwner, with its error.
    for (const name of [BUS, 'com.example.Owned', 'com.example.Free']) {
      cases.push(call(undefined, 'GetNameOwner', [s(name)], { path, label: `GetNameOwner(${name}) without interface at ${path}` }));
      cases.push(call(D, 'GetNameOwner', [s(name)], { path, flags: NO_REPLY_EXPECTED, label: `GetNameOwner(${name}) with NO_REPLY_EXPECTED at ${path}` }));
    }
    cases.push(call('org.freedesktop.DBus.Peer', 'GetNameOwner', [s(BUS)], { path }));
    // So are AddMatch and RemoveMatch, with their errors.
    for (const rule of ["type='signal',member='At'", "type='bogus'"]) {
      cases.push(call(undefined, 'AddMatch', [s(rule)], { path, label: `AddMatch(${rule}) without interface at ${path}` }));
      cases.push(call(D, 'AddMatch', [s(rule)], { path, flags: NO_REPLY_EXPECTED, label: `AddMatch(${rule}) with NO_REPLY_EXPECTED at ${path}` }));
      cases.push(call(D, 'RemoveMatch', [s(rule)], { path, flags: NO_REPLY_EXPECTED, label: `RemoveMatch(${rule}) with NO_REPLY_EXPECTED at ${path}` }));
      cases.push(call(D, 'RemoveMatch', [s(rule)], { path, flags: NO_REPLY_EXPECTED, label: `RemoveMatch(${rule}) again with NO_REPLY_EXPECTED at ${path}` }));
    }
  }
  const P = 'org.freedesktop.DBus.Properties';
  for (const iface of [D, 'org.freedesktop.DBus.Monitoring', STATS, P, 'com.example.Nope', '']) {
    cases.push(call(P, 'GetAll', [s(iface)]));
    for (const prop of ['Features', 'Interfaces', 'Nope']) {
      cases.push(call(P, 'Get', [s(iface), s(prop)]));
      cases.push(call(P, 'Set', [s(iface), s(prop), { sig: 'v', value: ['s', 'x'] }]));
    }
  }
  const M = 'org.freedesktop.DBus.Monitoring';
  cases.push(call(M, 'BecomeMonitor', [{ sig: 'as', value: [] }, u(1)]));
  cases.push(call(M, 'BecomeMonitor', [{ sig: 'as', value: ["type='bogus'"] }, u(0)]));
  // Wrong signatures for every method.
  const methods: [string, string][] = [
    [D, 'Hello'], [D, 'RequestName'], [D, 'ReleaseName'], [D, 'StartServiceByName'], [D, 'UpdateActivationEnvironment'],
    [D, 'NameHasOwner'], [D, 'ListNames'], [D, 'ListActivatableNames'], [D, 'AddMatch'], [D, 'RemoveMatch'],
    [D, 'GetNameOwner'], [D, 'ListQueuedOwners'], [D, 'GetConnectionUnixUser'], [D, 'GetConnectionUnixProcessID'],
    [D, 'GetAdtAuditSessionData'], [D, 'GetConnectionSELinuxSecurityContext'], [D, 'ReloadConfig'], [D, 'GetId'],
    [D, 'GetConnectionCredentials'], [P, 'Get'], [P, 'GetAll'], [P, 'Set'], ['org.freedesktop.DBus.Introspectable', 'Introspect'],
    [M, 'BecomeMonitor'], [STATS, 'GetStats'], [STATS, 'GetConnectionStats'], [STATS, 'GetAllMatchRules'],
    ['org.freedesktop.DBus.Peer', 'Ping'], ['org.freedesktop.DBus.Peer', 'GetMachineId'],
  ];
  for (const [iface, m] of methods) {
    cases.push(call(iface, m, [u(7)]));
    cases.push(call(iface, m, [s('org.example.A'), s('b'), s('c')]));
    // Without an interface the driver finds the method by its name.
    cases.push(call(undefined, m, [u(7)]));
  }
  return cases;
}

function headerCase(label: string, type: number, fields: HeaderField[], extra: Partial<RawMessage> = {}, fresh = false): Case {
  return {
    label,
    fresh,
    build: (names) => ({
      type,
      serial: 0,
      fields: fields.map(([c, sig, v]) => [c, sig, typeof v === 'string' ? names(v) : v] as HeaderField),
      ...extra,
    }),
  };
}

function headerCases(): Case[] {
  const C = MessageType.MethodCall;
  const cases: Case[] = [
    headerCase('bus: unknown interface', C, callFields(BUS, PATH, 'com.example.Nope', 'GetId')),
    headerCase('bus: unknown member', C, callFields(BUS, PATH, BUS, 'Nope')),
    headerCase('bus: unknown member, no interface', C, callFields(BUS, PATH, undefined, 'Nope')),
    headerCase('bus: GetId at another path', C, callFields(BUS, '/com/example', BUS, 'GetId')),
    headerCase('bus: NO_REPLY_EXPECTED', C, callFields(BUS, PATH, BUS, 'GetId'), { flags: NO_REPLY_EXPECTED }),
    headerCase('bus: NO_REPLY_EXPECTED on an error', C, callFields(BUS, PATH, BUS, 'Nope'), { flags: NO_REPLY_EXPECTED }),
    headerCase('bus: unknown flags', C, callFields(BUS, PATH, BUS, 'GetId'), { flags: 0xf0 }),
    headerCase('bus: unknown header field', C, [...callFields(BUS, PATH, BUS, 'GetId'), [100, 's', 'x'], [200, 'ay', Buffer.from('zz')]]),
    headerCase('bus: forged sender', C, [...callFields(BUS, PATH, BUS, 'GetId'), [Field.Sender, 's', ':1.99999']]),
    headerCase('bus: signal to the bus', MessageType.Signal, [[Field.Path, 'o', PATH], [Field.Interface, 's', BUS], [Field.Member, 's', 'NameLost'], [Field.Destination, 's', BUS]]),
    headerCase('bus: signal with a body to the bus', MessageType.Signal, [[Field.Path, 'o', '/a'], [Field.Interface, 's', 'a.b'], [Field.Member, 's', 'C'], [Field.Destination, 's', BUS], [Field.Signature, 'g', 's']], { bodySignature: 's', body: ['x'] }),
    headerCase('bus: reply to nothing', MessageType.MethodReturn, [[Field.ReplySerial, 'u', 12345], [Field.Destination, 's', BUS]]),
    headerCase('bus: error to nothing', MessageType.Error, [[Field.ErrorName, 's', 'com.example.Error'], [Field.ReplySerial, 'u', 12345], [Field.Destination, 's', BUS]]),
    headerCase('peer: reply to nothing', MessageType.MethodReturn, [[Field.ReplySerial, 'u', 12345], [Field.Destination, 's', ':other']]),
    headerCase('peer: error to nothing', MessageType.Error, [[Field.ErrorName, 's', 'com.example.Error'], [Field.ReplySerial, 'u', 12345], [Field.Destination, 's', ':other']]),
    headerCase('self: signal to itself with a forged sender', MessageType.Signal, [[Field.Path, 'o', '/a'], [Field.Interface, 's', 'a.b'], [Field.Member, 's', 'C'], [Field.Destination, 's', ':me'], [Field.Sender, 's', ':other']]),
    headerCase('self: signal to itself', MessageType.Signal, [[Field.Path, 'o', '/a'], [Field.Interface, 's', 'a.b'], [Field.Member, 's', 'C'], [Field.Destination, 's', ':me']]),
    headerCase('peer: unknown unique name', C, callFields(':1.99999', '/a', 'a.b', 'C')),
    headerCase('peer: unknown well-known name', C, callFields('com.example.Nobody', '/a', 'a.b', 'C')),
    headerCase('peer: unknown well-known name, NO_AUTO_START', C, callFields('com.example.Nobody', '/a', 'a.b', 'C'), { flags: 2 }),
    headerCase('peer: activatable name, NO_AUTO_START', C, callFields(ACTIVATABLE, '/a', 'a.b', 'C'), { flags: 2 }),
    { ...headerCase('peer: activatable name whose service fails', C, callFields(ACTIVATABLE, '/a', 'a.b', 'C')), awaitReply: true },
    headerCase('bus: no destination, a driver method', C, callFields(undefined, PATH, BUS, 'GetId')),
    headerCase('bus: no destination, Ping', C, callFields(undefined, '/', 'org.freedesktop.DBus.Peer', 'Ping')),
    headerCase('no destination: a signal', MessageType.Signal, [[Field.Path, 'o', '/a'], [Field.Interface, 's', 'a.b'], [Field.Member, 's', 'C']]),
    headerCase('unknown type 9 to the bus', 9, [[Field.Destination, 's', BUS]], {}, true),
    headerCase('unknown type 9 to a peer', 9, [[Field.Destination, 's', ':other']], {}, true),
    headerCase('unknown type 9 without destination', 9, [], {}, true),
    headerCase('unknown type 255 with a body', 255, [[Field.Destination, 's', ':other'], [Field.Signature, 'g', 's']], { bodySignature: 's', body: ['x'] }, true),
    headerCase('type 0', 0, [[Field.Destination, 's', BUS]], {}, true),
    headerCase('bus: no path', C, [[Field.Member, 's', 'GetId'], [Field.Destination, 's', BUS]], {}, true),
    headerCase('bus: no member', C, [[Field.Path, 'o', PATH], [Field.Destination, 's', BUS]], {}, true),
    headerCase('bus: a second Hello', C, callFields(BUS, PATH, BUS, 'Hello'), {}, true),
    headerCase('signal without interface', MessageType.Signal, [[Field.Path, 'o', '/a'], [Field.Member, 's', 'C']], {}, true),
    headerCase('error without error name', MessageType.Error, [[Field.ReplySerial, 'u', 1], [Field.Destination, 's', ':other']], {}, true),
    headerCase('reply without reply serial', MessageType.MethodReturn, [[Field.Destination, 's', ':other']], {}, true),
    headerCase('body longer than its signature', C, [...callFields(BUS, PATH, BUS, 'GetId')], { bodySignature: 's', body: ['x'] }, true),
    headerCase('signature without body', C, [...callFields(BUS, PATH, BUS, 'NameHasOwner', 's')], {}, true),
    headerCase('path field of the wrong type', C, [[Field.Path, 's', PATH], [Field.Member, 's', 'GetId'], [Field.Destination, 's', BUS]], {}, true),
    headerCase('interface org.freedesktop.DBus.Local', C, callFields(BUS, PATH, 'org.freedesktop.DBus.Local', 'Disconnected'), {}, true),
    headerCase('path /org/freedesktop/DBus/Local', MessageType.Signal, [[Field.Path, 'o', '/org/freedesktop/DBus/Local'], [Field.Interface, 's', 'a.b'], [Field.Member, 's', 'C']], {}, true),
  ];
  return cases;
}

let pair: Pair;

beforeAll(async () => {
  pair = await startPair(3);
  for (const side of [pair.tested, pair.reference]) {
    const [, other, third] = side.clients;
    await other.bus.requestName('com.example.Owned', 1);
    await third.bus.requestName('com.example.Owned', 0);
  }
}, 60000);

afterAll(async () => {
  await pair?.stop();
});

function namesOf(side: Side, fresh?: Client): (n: string) => string {
  const [me, other, third] = side.clients;
  const map: Record<string, string> = { ':me': me.uniqueName, ':other': other.uniqueName, ':third': third.uniqueName };
  if (fresh) map[':fresh'] = fresh.uniqueName;
  return (n) => map[n] ?? n;
}

// Replies whose order a bus is free to choose are compared sorted.
function canonical(o: Observed): string {
  const sortLists = (v: unknown): unknown => {
    if (Array.isArray(v)) {
      const mapped = v.map(sortLists);
      return mapped.every((x) => typeof x === 'string') ? [...mapped].sort() : mapped;
    }
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v as object).sort()) out[k] = sortLists((v as Record<string, unknown>)[k]);
      return out;
    }
    return v;
  };
  return JSON.stringify(sortLists(o));
}

async function runOn(side: Side, c: Case): Promise<Observed> {
  if (!c.fresh) {
    const me = side.clients[0];
    return observe(me, c.build(namesOf(side)), normaliser(side.clients, ROLES, side.bus.pid), c.awaitReply);
  }
  const fresh = await connect(side.bus.address);
  try {
    // NameAcquired for its unique name has arrived once this returns.
    await sync(fresh.bus);
    return await observe(fresh, c.build(namesOf(side, fresh)), normaliser([...side.clients, fresh], ROLES, side.bus.pid), c.awaitReply);
  } finally {
    await fresh.close().catch(() => undefined);
  }
}

async function differences(cases: Case[]): Promise<Found> {
  const found: Found = {};
  for (const c of cases) {
    const [tested, reference] = [await runOn(pair.tested, c), await runOn(pair.reference, c)];
    if (!same(tested, reference)) found[c.label] = { tested, reference };
  }
  return found;
}

type Found = Record<string, { tested: Observed; reference: Observed }>;

function unexplained(found: Found): Record<string, { tested: string; reference: string }> {
  return Object.fromEntries(
    Object.entries(found)
      .filter(([label, d]) => !ALLOWED.some((a) => a.explains(label, d.tested, d.reference)))
      .map(([label, d]) => [label, { tested: canonical(d.tested), reference: canonical(d.reference) }]),
  );
}

describe('the driver answers as dbus-daemon does', () => {
  test('every method, with edge-case arguments and wrong signatures', async () => {
    expect(unexplained(await differences(driverCases()))).toEqual({});
  }, 300000);

  test('messages with unusual headers and types', async () => {
    expect(unexplained(await differences(headerCases()))).toEqual({});
  }, 300000);
});
