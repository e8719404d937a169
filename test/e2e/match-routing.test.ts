// Broadcast routing with many match rules: subscribers whose one real rule
// constrains a single field, buried among rules that differ from it in that
// field or add a field no signal satisfies, and signals that each differ from
// a base signal in one field. Every subscriber must get exactly the signals
// its real rule accepts, before and after rules are removed, name owners
// change, or the same rule is added twice. The same scenario runs on the
// reference dbus-daemon, so the expectations are checked against D-Bus itself.
import { ChildProcess } from 'child_process';
import { Message, MessageType } from 'dbus-next';
import { daemonPath, RunningBus, startBus } from '../helpers/bus';
import { addMatch, callDriver, Client, connect, DRIVER, sync } from '../helpers/client';
import { spawnTracked, terminate } from '../helpers/processes';

const REFERENCE = '/usr/bin/dbus-daemon';
const NOISE = 60;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a test signal carries; `label` (its arg2) names the case. */
interface Sig {
  path: string;
  iface: string;
  member: string;
  arg0: string;
  arg1: string;
  label: string;
}

const BASE: Omit<Sig, 'label'> = {
  path: '/com/example/Obj/child',
  iface: 'com.example.Iface',
  member: 'Changed',
  arg0: 'com.example.Thing.part',
  arg1: 'x',
};

interface World {
  /** Owns com.example.Sender at first. */
  sender: Client;
  other: Client;
  /** Unique name of whoever owns com.example.Sender when the signal is sent. */
  senderNameOwner: string | null;
}

interface Subscriber {
  name: string;
  rule: (w: World) => string;
  /** Rules that must never accept a test signal, shaped like the real one. */
  noise: (i: number, w: World) => string[];
  accepts: (s: Sig, from: string, w: World) => boolean;
}

function inNamespace(value: string, ns: string, sep: string): boolean {
  return value === ns || value.startsWith(ns + sep);
}

const SUBSCRIBERS: Subscriber[] = [
  {
    name: 'member',
    rule: () => "type='signal',member='Changed'",
    noise: (i) => [`type='signal',member='Changed${i}n'`, `type='signal',member='Changed',interface='com.example.Nope${i}'`],
    accepts: (s) => s.member === 'Changed',
  },
  {
    name: 'interface',
    rule: () => "interface='com.example.Iface'",
    noise: (i) => [`interface='com.example.Iface${i}n'`, `interface='com.example.Iface',arg5='nope${i}'`],
    accepts: (s) => s.iface === 'com.example.Iface',
  },
  {
    name: 'path',
    rule: () => "path='/com/example/Obj/child'",
    noise: (i) => [`path='/com/example/Obj/child${i}'`, `path='/com/example/Obj/child',member='Nope${i}'`],
    accepts: (s) => s.path === '/com/example/Obj/child',
  },
  {
    name: 'path_namespace',
    rule: () => "path_namespace='/com/example/Obj'",
    noise: (i) => [
      `path_namespace='/com/example/Obj${i}'`,
      `path_namespace='/com/example/Obj/child${i}'`,
      `path_namespace='/com/example/Obj',member='Nope${i}'`,
    ],
    accepts: (s) => inNamespace(s.path, '/com/example/Obj', '/'),
  },
  {
    name: 'arg0',
    rule: () => "arg0='com.example.Thing.part'",
    noise: (i) => [`arg0='com.example.Thing.part${i}'`, `arg0='com.example.Thing.part',arg1='nope${i}'`],
    accepts: (s) => s.arg0 === 'com.example.Thing.part',
  },
  {
    name: 'arg0namespace',
    rule: () => "arg0namespace='com.example.Thing'",
    noise: (i) => [
      `arg0namespace='com.example.Thing${i}'`,
      `arg0namespace='com.example.Thing.part.x${i}'`,
      `arg0namespace='com.example.Thing',interface='com.example.Nope${i}'`,
    ],
    accepts: (s) => inNamespace(s.arg0, 'com.example.Thing', '.'),
  },
  {
    name: 'sender by well-known name',
    rule: () => "sender='com.example.Sender'",
    noise: (i) => [`sender='com.example.Sender${i}'`, `sender='com.example.Sender',path='/nope/p${i}'`],
    accepts: (_s, from, w) => from === w.senderNameOwner,
  },
  {
    name: 'sender by unique name',
    rule: (w) => `sender='${w.sender.uniqueName}'`,
    noise: (i, w) => [`sender=':1.${1000 + i}'`, `sender='${w.sender.uniqueName}',arg1='nope${i}'`],
    accepts: (_s, from, w) => from === w.sender.uniqueName,
  },
  {
    name: 'type',
    rule: () => "type='signal',arg1='x'",
    noise: (i) => [`type='method_call',arg1='x',member='M${i}'`, `type='error',arg1='x'`, `type='method_return',arg1='x${i}'`],
    accepts: (s) => s.arg1 === 'x',
  },
  {
    name: 'no type',
    rule: () => "arg1='x'",
    noise: (i) => [`arg1='x${i}'`, `arg1='x',arg3='nope${i}'`],
    accepts: (s) => s.arg1 === 'x',
  },
];

const CASES: Omit<Sig, 'label'>[] = [
  BASE,
  { ...BASE, member: 'Changed2' },
  { ...BASE, iface: 'com.example.Iface2' },
  { ...BASE, path: '/com/example/Obj/child/deeper' },
  { ...BASE, path: '/com/example/Obj' },
  { ...BASE, path: '/com/example/Objx' },
  { ...BASE, path: '/' },
  { ...BASE, arg0: 'com.example.Thing' },
  { ...BASE, arg0: 'com.example.Thingy' },
  { ...BASE, arg0: 'com.example.Thing.part.sub' },
  { ...BASE, arg0: 'com.example' },
  { ...BASE, arg1: 'y' },
];

function signal(s: Sig, destination?: string): Message {
  return new Message({
    type: MessageType.SIGNAL,
    path: s.path,
    interface: s.iface,
    member: s.member,
    signature: 'sss',
    body: [s.arg0, s.arg1, s.label],
    ...(destination ? { destination } : {}),
  });
}

/** The labels of the test signals a client has received so far, in order. */
function labels(c: Client): string[] {
  return c.received
    .filter((m) => m.type === MessageType.SIGNAL && m.signature === 'sss' && m.interface !== 'org.freedesktop.DBus')
    .map((m) => m.body[2] as string);
}

/** Names in the arg0 of the NameOwnerChanged signals a client got. */
function ownerChanges(c: Client): string[] {
  return c.received.filter((m) => m.member === 'NameOwnerChanged').map((m) => m.body[0] as string);
}

async function addRules(c: Client, rules: string[]): Promise<void> {
  await Promise.all(rules.map((r) => addMatch(c.bus, r)));
}

async function removeMatch(c: Client, rule: string): Promise<void> {
  await callDriver(c.bus, 'RemoveMatch', 's', [rule]);
}

/** The rules of `of` as the bus lists them; null where the bus has no Stats interface. */
async function getAllMatchRules(c: Client, of: Client): Promise<string[] | null> {
  try {
    const reply = await c.bus.call(
      new Message({ ...DRIVER, interface: 'org.freedesktop.DBus.Debug.Stats', member: 'GetAllMatchRules' }),
    );
    const all = (reply?.body[0] ?? {}) as Record<string, string[]>;
    return all[of.uniqueName] ?? [];
  } catch {
    return null;
  }
}

interface Outcome {
  received: Record<string, string[]>;
  expected: Record<string, string[]>;
  eavesdrop: { eavesdropper: string[]; plain: string[] };
  owners: { exact: string[]; namespace: string[] };
  monitor: string[];
  expectedMonitor: string[];
  order: { listed: string[]; added: string[] } | null;
}

async function startMonitor(address: string, filters: string[]): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawnTracked('dbus-monitor', ['--address', address, ...filters], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 10000;
  while (!/member=NameLost/.test(out)) {
    if (Date.now() > deadline) throw new Error(`dbus-monitor did not start: ${out}`);
    await sleep(20);
  }
  return { child, output: () => out };
}

/** The arg2 of each three-string signal in dbus-monitor's output. */
function monitorLabels(text: string): string[] {
  const out: string[] = [];
  for (const block of text.split(/\n(?=signal |method call |method return |error )/)) {
    const strings = [...block.matchAll(/^\s+string "([^"]*)"$/gm)].map((m) => m[1]);
    if (block.startsWith('signal ') && strings.length === 3) out.push(strings[2]);
  }
  return out;
}

async function scenario(daemon: string): Promise<Outcome> {
  const bus: RunningBus = await startBus({ daemon });
  const clients: Client[] = [];
  const open = async () => {
    const c = await connect(bus.address);
    clients.push(c);
    return c;
  };
  try {
    const sender = await open();
    const other = await open();
    await callDriver(sender.bus, 'RequestName', 'su', ['com.example.Sender', 0]);
    const world: World = { sender, other, senderNameOwner: sender.uniqueName };

    const subs = new Map<Subscriber, Client>();
    for (const sub of SUBSCRIBERS) {
      const c = await open();
      subs.set(sub, c);
      const rules = [sub.rule(world)];
      for (let i = 0; i < NOISE; ++i) rules.push(...sub.noise(i, world));
      await addRules(c, rules);
    }
    // Added twice: one RemoveMatch leaves one behind.
    const dup = await open();
    const dupRule = "member='Changed',arg1='x'";
    await addRules(dup, [dupRule, `member='Changed',arg1='x',path='/nope'`]);
    await addMatch(dup.bus, dupRule);

    const eavesdropper = await open();
    const plain = await open();
    await addRules(eavesdropper, ["eavesdrop='true',member='Direct'", ...Array.from({ length: NOISE }, (_, i) => `eavesdrop='true',member='Direct${i}'`)]);
    await addRules(plain, ["member='Direct'", ...Array.from({ length: NOISE }, (_, i) => `member='Direct${i}'`)]);

    const exact = await open();
    const nsWatcher = await open();
    const noc = "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged'";
    await addRules(exact, [`${noc},arg0='com.example.Watched'`, ...Array.from({ length: NOISE }, (_, i) => `${noc},arg0='com.example.Watched${i}'`)]);
    await addRules(nsWatcher, [`${noc},arg0namespace='com.example.Watched'`, `${noc},arg0namespace='com.example.Watchedx'`]);

    const monitor = await startMonitor(bus.address, ["member='Changed2'", "arg0namespace='com.example.Thing.part'", "path_namespace='/com/example/Obj/child'"]);

    const expected = new Map<Client, string[]>();
    for (const c of [...subs.values(), dup]) expected.set(c, []);
    const expectedMonitor: string[] = [];
    const dupAlive = { count: 2 };
    const removed = new Set<Subscriber>();

    // What every subscriber and the monitor should get of a broadcast.
    const expectBroadcast = (s: Sig, from: Client) => {
      for (const [sub, c] of subs) {
        if (!removed.has(sub) && sub.accepts(s, from.uniqueName, world)) expected.get(c)?.push(s.label);
      }
      if (dupAlive.count > 0 && s.member === 'Changed' && s.arg1 === 'x') expected.get(dup)?.push(s.label);
      if (s.member === 'Changed2' || inNamespace(s.arg0, 'com.example.Thing.part', '.') || inNamespace(s.path, '/com/example/Obj/child', '/')) {
        expectedMonitor.push(s.label);
      }
    };
    let n = 0;
    const send = async (from: Client, base: Omit<Sig, 'label'>) => {
      const s: Sig = { ...base, label: `case${n++}` };
      from.bus.send(signal(s));
      await sync(from.bus);
      expectBroadcast(s, from);
    };
    const sendAll = async (from: Client) => {
      for (const c of CASES) await send(from, c);
    };

    await sendAll(sender);
    await sendAll(other);

    // The well-known name moves: rules naming it follow the new owner.
    await callDriver(sender.bus, 'ReleaseName', 's', ['com.example.Sender']);
    await callDriver(other.bus, 'RequestName', 'su', ['com.example.Sender', 0]);
    world.senderNameOwner = other.uniqueName;
    await sendAll(sender);
    await sendAll(other);

    // Removing the real rules leaves the noise, which accepts nothing.
    for (const sub of SUBSCRIBERS.filter((_, i) => i % 2 === 0)) {
      await removeMatch(subs.get(sub) as Client, sub.rule(world));
      removed.add(sub);
    }
    await removeMatch(dup, dupRule);
    dupAlive.count = 1;
    await sendAll(other);
    await removeMatch(dup, dupRule);
    dupAlive.count = 0;
    // And adding one back brings its signals back.
    const back = SUBSCRIBERS[0];
    await addMatch((subs.get(back) as Client).bus, back.rule(world));
    removed.delete(back);
    await sendAll(other);

    // A unicast signal reaches eavesdroppers only; a broadcast reaches both.
    const direct: Sig = { path: '/org/other', iface: 'org.other.I', member: 'Direct', arg0: 'zzz', arg1: 'zz', label: 'direct-unicast' };
    sender.bus.send(signal(direct, other.uniqueName));
    sender.bus.send(signal({ ...direct, label: 'direct-broadcast' }));
    await sync(sender.bus);
    expectBroadcast({ ...direct, label: 'direct-broadcast' }, sender);

    for (const name of ['com.example.Watched', 'com.example.Watched.Sub', 'com.example.WatchedNot', 'com.example.Watchedx.y']) {
      await callDriver(other.bus, 'RequestName', 'su', [name, 0]);
    }

    const order = await getAllMatchRules(sender, subs.get(SUBSCRIBERS[1]) as Client);

    await send(sender, { ...BASE, member: 'Changed2', arg0: 'end' });
    for (const c of clients) await sync(c.bus);
    const deadline = Date.now() + 5000;
    while (!monitorLabels(monitor.output()).includes(`case${n - 1}`) && Date.now() < deadline) await sleep(20);
    await terminate(monitor.child);

    const received: Record<string, string[]> = {};
    const expectedByName: Record<string, string[]> = {};
    for (const [sub, c] of subs) {
      received[sub.name] = labels(c);
      expectedByName[sub.name] = expected.get(c) as string[];
    }
    received.duplicate = labels(dup);
    expectedByName.duplicate = expected.get(dup) as string[];
    const sub1 = SUBSCRIBERS[1];
    return {
      received,
      expected: expectedByName,
      eavesdrop: { eavesdropper: labels(eavesdropper), plain: labels(plain) },
      owners: { exact: ownerChanges(exact), namespace: ownerChanges(nsWatcher) },
      monitor: monitorLabels(monitor.output()),
      expectedMonitor,
      order: order === null ? null : { listed: order, added: [sub1.rule(world), ...Array.from({ length: NOISE }, (_, i) => sub1.noise(i, world)).flat()] },
    };
  } finally {
    for (const c of clients) await c.close();
    await bus.stop();
  }
}

describe('broadcast routing with many match rules', () => {
  test.each([
    ['the bus under test', daemonPath()],
    ['the reference dbus-daemon', REFERENCE],
  ])('%s delivers exactly what each rule accepts', async (_what, daemon) => {
    const out = await scenario(daemon);
    expect(out.received).toEqual(out.expected);
    // Guards against a scenario that proves nothing.
    expect(out.expected.member.length).toBeGreaterThan(20);
    expect(out.expected['sender by well-known name'].length).toBeGreaterThan(10);
    expect(out.eavesdrop).toEqual({ eavesdropper: ['direct-unicast', 'direct-broadcast'], plain: ['direct-broadcast'] });
    expect(out.owners).toEqual({
      exact: ['com.example.Watched'],
      namespace: ['com.example.Watched', 'com.example.Watched.Sub', 'com.example.Watchedx.y'],
    });
    expect(out.monitor).toEqual(out.expectedMonitor);
    expect(out.monitor.length).toBeGreaterThan(10);
    // This bus lists rules in the order they were added; dbus-daemon's
    // order is that of its hash tables.
    if (out.order !== null && !daemon.endsWith('dbus-daemon')) expect(out.order.listed).toEqual(out.order.added);
    if (out.order !== null) expect([...out.order.listed].sort()).toEqual([...out.order.added].sort());
  }, 120000);
});
