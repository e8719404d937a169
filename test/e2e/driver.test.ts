import { Message } from 'dbus-next';
import { RunningBus, startBus } from '../helpers/bus';
import { callDriver, callError, Client, connect, DRIVER } from '../helpers/client';
import { RunningService, startService, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

let bus: RunningBus;
let me: Client;

beforeAll(async () => {
  bus = await startBus();
  me = await connect(bus.address);
});

afterAll(async () => {
  await me?.close();
  await bus?.stop();
});

function driverCall(member: string, signature = '', body: unknown[] = []): Message {
  return new Message({ ...DRIVER, member, signature, body });
}

describe('the bus driver', () => {
  test('a second Hello is refused', async () => {
    const c = await connect(bus.address);
    try {
      const outcome = await Promise.race([
        callError(c.bus, driverCall('Hello')).then((e) => `error ${e.name}`),
        new Promise<string>((resolve) => c.bus.on('error', () => resolve('disconnected'))),
      ]);
      expect(outcome).toMatch(/^(error org\.freedesktop\.DBus\.Error\.\w+|disconnected)$/);
    } finally {
      await c.close();
    }
  });

  test('GetNameOwner of a name nobody owns is NameHasNoOwner', async () => {
    const e = await callError(me.bus, driverCall('GetNameOwner', 's', ['com.example.NobodyOwnsThis']));
    expect(e.name).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
    const own = await callDriver(me.bus, 'GetNameOwner', 's', [me.uniqueName]);
    expect(own.body).toEqual([me.uniqueName]);
  });

  test('an unknown driver method is UnknownMethod', async () => {
    const e = await callError(me.bus, driverCall('NoSuchMethod', 's', ['x']));
    expect(e.name).toBe('org.freedesktop.DBus.Error.UnknownMethod');
  });

  test('a call to a name nobody owns is ServiceUnknown', async () => {
    const e = await callError(
      me.bus,
      new Message({ destination: 'com.example.NotThere', path: '/', interface: 'com.example.Nothing', member: 'Anything' }),
    );
    expect(e.name).toBe('org.freedesktop.DBus.Error.ServiceUnknown');
  });

  test('the bus reports who is on the other end of each connection', async () => {
    const service = await startService(bus.address, 'com.example.Credentials');
    try {
      const uid = process.getuid!();
      for (const [who, pid] of [
        [me.uniqueName, process.pid],
        [service.uniqueName, service.process.pid!],
        ['com.example.Credentials', service.process.pid!],
      ] as Array<[string, number]>) {
        expect((await callDriver(me.bus, 'GetConnectionUnixUser', 's', [who])).body).toEqual([uid]);
        expect((await callDriver(me.bus, 'GetConnectionUnixProcessID', 's', [who])).body).toEqual([pid]);
        const creds = (await callDriver(me.bus, 'GetConnectionCredentials', 's', [who])).body[0] as Record<
          string,
          { signature: string; value: unknown }
        >;
        expect(creds.UnixUserID).toEqual(expect.objectContaining({ signature: 'u', value: uid }));
        expect(creds.ProcessID).toEqual(expect.objectContaining({ signature: 'u', value: pid }));
      }
      const e = await callError(me.bus, driverCall('GetConnectionUnixUser', 's', ['com.example.NobodyOwnsThis']));
      expect(e.name).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
    } finally {
      await service.stop();
    }
  });

  test('a callee that disconnects without replying gives the caller NoReply', async () => {
    const service = await startService(bus.address, 'com.example.Quitter');
    try {
      const started = Date.now();
      const e = await callError(
        me.bus,
        new Message({ destination: 'com.example.Quitter', path: TEST_PATH, interface: TEST_INTERFACE, member: 'ExitWithoutReply' }),
      );
      expect(e.name).toBe('org.freedesktop.DBus.Error.NoReply');
      // The bus answers as soon as the callee leaves, not after a timeout.
      expect(Date.now() - started).toBeLessThan(10000);
    } finally {
      await service.stop();
    }
  });
});
