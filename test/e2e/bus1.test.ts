// The org.kdbusbridge.Bus1 extension of the driver, from dbus-next,
// python3-dbus and gdbus.
import { Socket } from 'net';
import { Message, MessageType } from 'dbus-next';
import { RunningBus, startBus } from '../helpers/bus';
import { callDriver, callError, clientsPerTest } from '../helpers/client';
import { run, spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { PYTHON } from '../helpers/service';

const BUS1 = 'org.kdbusbridge.Bus1';
const DRIVER = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus' };

function bus1(member: string, signature = '', body: unknown[] = []): Message {
  return new Message({ ...DRIVER, interface: BUS1, member, signature, body });
}

describe('org.kdbusbridge.Bus1', () => {
  let bus: RunningBus;
  const client = clientsPerTest(() => bus.address);

  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await bus.stop();
  });

  test('is introspectable at /org/freedesktop/DBus and listed in Interfaces', async () => {
    const r = await run('gdbus', ['introspect', '--address', bus.address, '--dest', 'org.freedesktop.DBus', '--object-path', '/org/freedesktop/DBus']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`interface ${BUS1}`);
    expect(r.stdout).toMatch(/ByeBye\(\);/);
    const c = await client();
    const reply = await c.bus.call(new Message({ ...DRIVER, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: ['org.freedesktop.DBus', 'Interfaces'] }));
    expect(reply?.body[0].value).toContain(BUS1);
  });

  test('an unknown method is UnknownMethod', async () => {
    const c = await client();
    expect((await callError(c.bus, bus1('Nope'))).name).toBe('org.freedesktop.DBus.Error.UnknownMethod');
  });

  test('ByeBye is Busy while messages wait for the caller in the bus', async () => {
    const service = await client();
    const caller = await client();
    // dbus-next reads on 'readable', which pause() does not stop: stop the
    // socket's reads themselves, so that what the bus sends waits in it.
    const stream = (service.bus as unknown as { _connection: { stream: Socket & { _handle: { reading: boolean; readStop(): number; readStart(): number } } } })._connection.stream;
    stream._handle.readStop();
    stream._handle.reading = false;
    // More than the socket holds: the rest waits in the bus.
    const blob = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 64; i++) {
      caller.bus.send(new Message({ destination: service.uniqueName, path: '/a', interface: 'com.example.Bulk', member: 'Data', signature: 'ay', body: [blob], flags: 1 }));
    }
    await callDriver(caller.bus, 'GetId');
    // The service may read again only once the bus has decided: a monitor
    // sees the bus's answer to ByeBye leave for the service.
    const monitor = await client();
    let decided = false;
    monitor.bus.on('message', (m: Message) => {
      const answer = m.type === MessageType.ERROR || m.type === MessageType.METHOD_RETURN;
      if (answer && m.sender === 'org.freedesktop.DBus' && m.destination === service.uniqueName) decided = true;
    });
    await monitor.bus.call(
      new Message({ ...DRIVER, interface: 'org.freedesktop.DBus.Monitoring', member: 'BecomeMonitor', signature: 'asu', body: [[`destination='${service.uniqueName}'`], 0] }),
    );
    const answer = callError(service.bus, bus1('ByeBye'));
    expect(await until(() => decided, 10000)).toBe(true);
    stream._handle.reading = true;
    stream._handle.readStart();
    expect((await answer).name).toBe('org.kdbusbridge.Error.Busy');
    // Once it has read everything, it can go.
    await callDriver(service.bus, 'GetId');
    await service.bus.call(bus1('ByeBye'));
  });

  test('after ByeBye: names released, nothing new routed, own calls and replies still work', async () => {
    const service = await client();
    const other = await client();
    expect(await service.bus.requestName('com.example.Leaving', 4)).toBe(1);
    await service.bus.call(bus1('ByeBye'));
    const owner = await callError(other.bus, new Message({ ...DRIVER, interface: 'org.freedesktop.DBus', member: 'GetNameOwner', signature: 's', body: ['com.example.Leaving'] }));
    expect(owner.name).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
    // Its unique name is not routed to any more.
    const direct = await callError(other.bus, new Message({ destination: service.uniqueName, path: '/', interface: 'org.freedesktop.DBus.Peer', member: 'Ping' }));
    expect(direct.name).toBe('org.freedesktop.DBus.Error.ServiceUnknown');
    // Its own calls are answered, by the bus and by peers.
    expect((await callDriver(service.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
    const ping = await service.bus.call(new Message({ destination: other.uniqueName, path: '/', interface: 'org.freedesktop.DBus.Peer', member: 'Ping' }));
    expect(ping?.type).toBe(2);
    expect((await callError(service.bus, bus1('ByeBye'))).name).toBe('org.kdbusbridge.Error.Failed');
    expect((await callError(service.bus, new Message({ ...DRIVER, interface: 'org.freedesktop.DBus', member: 'RequestName', signature: 'su', body: ['com.example.Back', 0] }))).name).toBe(
      'org.freedesktop.DBus.Error.Failed',
    );
  });

  test('a call already delivered before ByeBye is still answered', async () => {
    const service = await client();
    const caller = await client();
    let delivered: Message | undefined;
    service.bus.addMethodHandler((m: Message) => {
      if (m.interface !== 'com.example.Slow') return false;
      delivered = m;
      return true;
    });
    const pending = caller.bus.call(new Message({ destination: service.uniqueName, path: '/', interface: 'com.example.Slow', member: 'Do' }));
    expect(await until(() => delivered !== undefined, 5000)).toBe(true);
    await service.bus.call(bus1('ByeBye'));
    service.bus.send(Message.newMethodReturn(delivered as Message, 's', ['late']));
    expect((await pending)?.body[0]).toBe('late');
  });

  test('python3-dbus: ByeBye releases the name of a connection that stays', async () => {
    const script = [
      'import sys, dbus',
      'b = dbus.bus.BusConnection(sys.argv[1])',
      'b.request_name("com.example.Py", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)',
      'b.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.kdbusbridge.Bus1", "ByeBye", "", [])',
      'print("bye", flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    const py = spawnTracked(PYTHON, ['-c', script, bus.address], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await waitForLine(py, /^bye/);
      const c = await client();
      expect((await callError(c.bus, new Message({ ...DRIVER, interface: 'org.freedesktop.DBus', member: 'GetNameOwner', signature: 's', body: ['com.example.Py'] }))).name).toBe(
        'org.freedesktop.DBus.Error.NameHasNoOwner',
      );
    } finally {
      py.stdin?.end();
      await terminate(py);
    }
  });

  test('gdbus: ByeBye answers', async () => {
    const r = await run('gdbus', ['call', '--address', bus.address, '--dest', 'org.freedesktop.DBus', '--object-path', '/org/freedesktop/DBus', '--method', `${BUS1}.ByeBye`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('()');
  });
});
