import { Message, MessageType } from 'dbus-next';
import { RunningBus, startBus } from '../helpers/bus';
import { addMatch, callDriver, Client, connect, DRIVER, sync } from '../helpers/client';

// Values from the D-Bus specification.
const ALLOW_REPLACEMENT = 0x1;
const REPLACE_EXISTING = 0x2;
const DO_NOT_QUEUE = 0x4;
const PRIMARY_OWNER = 1;
const IN_QUEUE = 2;
const EXISTS = 3;
const ALREADY_OWNER = 4;
const RELEASED = 1;
const NON_EXISTENT = 2;
const NOT_OWNER = 3;

const N = 'com.example.Contested';

let bus: RunningBus;
let open: Client[] = [];

beforeAll(async () => {
  bus = await startBus();
});

afterEach(async () => {
  await Promise.all(open.map((c) => c.close()));
  open = [];
});

afterAll(async () => {
  await bus?.stop();
});

/**
 * A party to the name contest. Its log holds, in arrival order, the driver
 * signals it received and the replies to the calls it made through `ask`
 * (replies to bookkeeping calls like AddMatch are left out).
 */
class Party {
  readonly asked = new Set<number>();
  private mark = 0;

  constructor(
    readonly label: string,
    readonly client: Client,
    private readonly labels: Map<string, string>,
  ) {}

  get name(): string {
    return this.client.uniqueName;
  }

  async ask(member: string, signature: string, body: unknown[]): Promise<Message> {
    const serial = this.client.bus.newSerial();
    this.asked.add(serial);
    try {
      const reply = await this.client.bus.call(new Message({ ...DRIVER, member, signature, body, serial }));
      return reply!;
    } catch (e) {
      const reply = (e as { reply?: Message }).reply;
      if (reply === undefined) throw e;
      return reply;
    }
  }

  async request(name: string, flags: number): Promise<number> {
    return (await this.ask('RequestName', 'su', [name, flags])).body[0] as number;
  }

  async release(name: string): Promise<number> {
    return (await this.ask('ReleaseName', 's', [name])).body[0] as number;
  }

  /** Everything logged since the previous call to `log`. */
  log(): string[] {
    const all = this.client.received;
    const slice = all.slice(this.mark);
    this.mark = all.length;
    const show = (v: unknown) => (typeof v === 'string' ? this.labels.get(v) ?? (v === '' ? "''" : v) : String(v));
    const out: string[] = [];
    for (const m of slice) {
      if (m.type === MessageType.SIGNAL && m.sender === 'org.freedesktop.DBus') {
        expect(m.path).toBe('/org/freedesktop/DBus');
        expect(m.interface).toBe('org.freedesktop.DBus');
        out.push(`${m.member}(${m.body.map(show).join(',')})`);
      } else if ((m.type === MessageType.METHOD_RETURN || m.type === MessageType.ERROR) && this.asked.has(Number(m.replySerial))) {
        out.push(m.type === MessageType.ERROR ? `error(${m.errorName})` : `reply(${m.body.map(show).join(',')})`);
      }
    }
    return out;
  }
}

async function parties(...labels: string[]): Promise<Party[]> {
  const names = new Map<string, string>();
  const result: Party[] = [];
  for (const label of labels) {
    const c = await connect(bus.address);
    open.push(c);
    names.set(c.uniqueName, label);
    result.push(new Party(label, c, names));
  }
  for (const p of result) {
    // Every party watches the contested name, as a service manager would.
    await addMatch(p.client.bus, `type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${N}'`);
    await sync(p.client.bus);
    p.log();
  }
  return result;
}

async function settle(...ps: Party[]): Promise<void> {
  await Promise.all(ps.map((p) => sync(p.client.bus)));
}

async function queuedLabels(p: Party, all: Party[]): Promise<string[]> {
  const reply = await callDriver(p.client.bus, 'ListQueuedOwners', 's', [N]);
  return (reply.body[0] as string[]).map((n) => all.find((q) => q.name === n)?.label ?? n);
}

describe('connecting', () => {
  test('Hello is answered first, then NameAcquired for the unique name', async () => {
    const c = await connect(bus.address);
    open.push(c);
    await sync(c.bus);
    const first = c.received[0];
    const second = c.received[1];
    expect(first.type).toBe(MessageType.METHOD_RETURN);
    expect(first.body).toEqual([c.uniqueName]);
    expect(c.uniqueName).toMatch(/^:\d+\.\d+$/);
    expect(second.type).toBe(MessageType.SIGNAL);
    expect(second.member).toBe('NameAcquired');
    expect(second.destination).toBe(c.uniqueName);
    expect(second.body).toEqual([c.uniqueName]);
  });

  test('unique names are announced and withdrawn with NameOwnerChanged', async () => {
    const [w] = await parties('W');
    await addMatch(w.client.bus, `type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'`);
    const other = await connect(bus.address);
    const otherName = other.uniqueName;
    await other.close();
    await settle(w);
    const seen = w.client.received
      .filter((m) => m.member === 'NameOwnerChanged' && m.body[0] === otherName)
      .map((m) => m.body);
    expect(seen).toEqual([
      [otherName, '', otherName],
      [otherName, otherName, ''],
    ]);
  });
});

describe('RequestName and ReleaseName', () => {
  test('queueing, DO_NOT_QUEUE, replacement, release and hand-over', async () => {
    const all = await parties('A', 'B', 'C', 'D', 'E');
    const [a, b, c, d, e] = all;

    // A takes the name, allowing replacement; NameAcquired precedes the reply.
    expect(await a.request(N, ALLOW_REPLACEMENT)).toBe(PRIMARY_OWNER);
    await settle(...all);
    expect(a.log()).toEqual([`NameOwnerChanged(${N},'',A)`, `NameAcquired(${N})`, 'reply(1)']);
    for (const p of [b, c, d, e]) expect(p.log()).toEqual([`NameOwnerChanged(${N},'',A)`]);

    expect(await a.request(N, ALLOW_REPLACEMENT)).toBe(ALREADY_OWNER);
    expect(a.log()).toEqual(['reply(4)']);

    // B queues; C refuses to queue.
    expect(await b.request(N, 0)).toBe(IN_QUEUE);
    expect(await c.request(N, DO_NOT_QUEUE)).toBe(EXISTS);
    expect(await queuedLabels(a, all)).toEqual(['A', 'B']);

    // D replaces A, who allowed it; A goes back into the queue right behind D.
    expect(await d.request(N, REPLACE_EXISTING)).toBe(PRIMARY_OWNER);
    await settle(...all);
    // The replaced owner hears NameLost before the broadcast.
    expect(a.log()).toEqual([`NameLost(${N})`, `NameOwnerChanged(${N},A,D)`]);
    expect(b.log()).toEqual(['reply(2)', `NameOwnerChanged(${N},A,D)`]);
    expect(c.log()).toEqual(['reply(3)', `NameOwnerChanged(${N},A,D)`]);
    expect(d.log()).toEqual([`NameOwnerChanged(${N},A,D)`, `NameAcquired(${N})`, 'reply(1)']);
    expect(await queuedLabels(a, all)).toEqual(['D', 'A', 'B']);

    // D did not allow replacement: E's REPLACE_EXISTING only queues it, but
    // at the head of the queue.
    expect(await e.request(N, REPLACE_EXISTING)).toBe(IN_QUEUE);
    expect(await queuedLabels(a, all)).toEqual(['D', 'E', 'A', 'B']);
    // Asking again with DO_NOT_QUEUE takes a queued connection out of the queue.
    expect(await e.request(N, REPLACE_EXISTING | DO_NOT_QUEUE)).toBe(EXISTS);
    expect(await queuedLabels(a, all)).toEqual(['D', 'A', 'B']);
    expect(await e.request(N, 0)).toBe(IN_QUEUE);
    expect(await queuedLabels(a, all)).toEqual(['D', 'A', 'B', 'E']);

    // Releasing from inside the queue changes no owner.
    expect(await b.release(N)).toBe(RELEASED);
    expect(await c.release(N)).toBe(NOT_OWNER);
    expect(await c.release('com.example.NobodyHasThis')).toBe(NON_EXISTENT);
    expect(await queuedLabels(a, all)).toEqual(['D', 'A', 'E']);

    // D releases: the name passes to the next in line, A.
    await settle(...all);
    for (const p of all) p.log();
    expect(await d.release(N)).toBe(RELEASED);
    await settle(...all);
    expect(d.log()).toEqual([`NameLost(${N})`, `NameOwnerChanged(${N},D,A)`, 'reply(1)']);
    expect(a.log()).toEqual([`NameOwnerChanged(${N},D,A)`, `NameAcquired(${N})`]);
    for (const p of [b, c, e]) expect(p.log()).toEqual([`NameOwnerChanged(${N},D,A)`]);
    expect(await queuedLabels(b, all)).toEqual(['A', 'E']);

    // A disconnects: E inherits.
    await a.client.close();
    await settle(b, c, d, e);
    expect(e.log()).toEqual([`NameOwnerChanged(${N},A,E)`, `NameAcquired(${N})`]);
    for (const p of [b, c, d]) expect(p.log()).toEqual([`NameOwnerChanged(${N},A,E)`]);
    expect(await queuedLabels(b, all)).toEqual(['E']);
    const owner = await callDriver(b.client.bus, 'GetNameOwner', 's', [N]);
    expect(owner.body).toEqual([e.name]);

    // The last owner leaving makes the name disappear.
    expect(await e.release(N)).toBe(RELEASED);
    await settle(b, c, d, e);
    expect(e.log()).toEqual([`NameLost(${N})`, `NameOwnerChanged(${N},E,'')`, 'reply(1)']);
    for (const p of [b, c, d]) expect(p.log()).toEqual([`NameOwnerChanged(${N},E,'')`]);
    const hasOwner = await callDriver(b.client.bus, 'NameHasOwner', 's', [N]);
    expect(hasOwner.body).toEqual([false]);
  });

  test('a DO_NOT_QUEUE owner that is replaced leaves the queue', async () => {
    const all = await parties('A', 'B', 'C');
    const [a, b, c] = all;
    expect(await a.request(N, ALLOW_REPLACEMENT | DO_NOT_QUEUE)).toBe(PRIMARY_OWNER);
    expect(await c.request(N, 0)).toBe(IN_QUEUE);
    expect(await b.request(N, REPLACE_EXISTING)).toBe(PRIMARY_OWNER);
    await settle(...all);
    expect(a.log()).toEqual([
      `NameOwnerChanged(${N},'',A)`,
      `NameAcquired(${N})`,
      'reply(1)',
      `NameLost(${N})`,
      `NameOwnerChanged(${N},A,B)`,
    ]);
    expect(await queuedLabels(b, all)).toEqual(['B', 'C']);
  });

  test('names that may not be owned are refused', async () => {
    const [a] = await parties('A');
    for (const bad of ['org.freedesktop.DBus', ':1.999', 'no-dots', '.starts.with.dot', 'com.example.Contested.']) {
      const reply = await a.ask('RequestName', 'su', [bad, 0]);
      expect([bad, reply.type]).toEqual([bad, MessageType.ERROR]);
    }
    const unknown = await a.ask('ListQueuedOwners', 's', ['com.example.Unowned']);
    expect(unknown.errorName).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
  });
});
