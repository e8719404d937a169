import { Message, MessageBus, sessionBus } from 'dbus-next';

export const DRIVER = {
  destination: 'org.freedesktop.DBus',
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
};

export interface Client {
  bus: MessageBus;
  uniqueName: string;
  /** Every message this connection has received, in arrival order. */
  received: Message[];
  close(): Promise<void>;
}

/** Connects a dbus-next client and waits for its Hello reply. */
export async function connect(address: string): Promise<Client> {
  const bus = sessionBus({ busAddress: address, authMethods: ['EXTERNAL'] });
  const received: Message[] = [];
  bus.on('message', (msg: Message) => received.push(msg));
  const uniqueName = await new Promise<string>((resolveName, reject) => {
    bus.once('connect', () => resolveName((bus as unknown as { name: string }).name));
    bus.once('error', reject);
  });
  // Errors after connecting (such as the peer going away) are reported by
  // the calls that observe them.
  bus.on('error', () => undefined);
  return {
    bus,
    uniqueName,
    received,
    close: () => disconnect(bus),
  };
}

export function disconnect(bus: MessageBus): Promise<void> {
  const stream = (bus as unknown as { _connection: { stream: NodeJS.EventEmitter & { destroyed?: boolean } } })._connection.stream;
  if (stream.destroyed) return Promise.resolve();
  return new Promise((done) => {
    stream.once('close', () => done());
    bus.disconnect();
  });
}

export async function callDriver(bus: MessageBus, member: string, signature = '', body: unknown[] = []): Promise<Message> {
  const reply = await bus.call(new Message({ ...DRIVER, member, signature, body }));
  if (reply === null) throw new Error(`no reply to ${member}`);
  return reply;
}

/** Resolves with the D-Bus error name a call fails with; rejects if it succeeds. */
export async function callError(bus: MessageBus, message: Message): Promise<{ name: string; text: string }> {
  try {
    await bus.call(message);
  } catch (e) {
    const err = e as { type?: string; text?: string };
    if (typeof err.type === 'string') return { name: err.type, text: err.text ?? '' };
    throw e;
  }
  throw new Error(`${message.member} unexpectedly succeeded`);
}

export async function addMatch(bus: MessageBus, rule: string): Promise<void> {
  await callDriver(bus, 'AddMatch', 's', [rule]);
}

/**
 * A round trip through the driver: every message the bus queued for this
 * connection before the reply has arrived once this resolves.
 */
export async function sync(bus: MessageBus): Promise<void> {
  await callDriver(bus, 'GetId');
}

/** Connects clients to the bus at `address()`; each test's clients are closed after it. */
export function clientsPerTest(address: () => string): () => Promise<Client> {
  const clients: Client[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  return async () => {
    const c = await connect(address());
    clients.push(c);
    return c;
  };
}
