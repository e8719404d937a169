// org.kdbusbridge.Bus1 priorities: a receiver that asked for them gets what
// waits in its queue in priority order (lower first), ties in global order.
// A control message overtakes bulk data queued for a slow consumer.
import { Message } from 'dbus-next';
import { RunningBus, startBus } from '../helpers/bus';
import { Client, callDriver, clientsPerTest } from '../helpers/client';
import { spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { fixture, PYTHON } from '../helpers/service';
import { encodeMessage, Field, MessageType } from '../helpers/wire';

const BUS1 = 'org.kdbusbridge.Bus1';
const DRIVER = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus' };
const BULK = 100;
const PRIORITY_FIELD = 0xa0;

type Stream = NodeJS.ReadableStream & NodeJS.WritableStream;
const streamOf = (c: Client): Stream => (c.bus as unknown as { _connection: { stream: Stream } })._connection.stream;

function signal(destination: string, member: string, body: unknown[] = [], signature = ''): Message {
  return new Message({ type: MessageType.Signal, destination, path: '/com/example/Flow', interface: 'com.example.Flow', member, signature, body });
}

describe('message priority', () => {
  let bus: RunningBus;
  const client = clientsPerTest(() => bus.address);

  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await bus.stop();
  });

  /**
   * Queues BULK large signals for a consumer that does not read (python3-dbus),
   * then runs `control` (which sends the Control signal and returns once the
   * bus has it), and gives the position at which the consumer got Control.
   */
  async function controlPosition(receivePriority: boolean, control: (consumer: string) => Promise<void>): Promise<number> {
    const consumer = spawnTracked(PYTHON, [fixture('slow_consumer.py'), bus.address, String(BULK + 1), receivePriority ? 'priority' : 'fifo'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    try {
      const name = (await waitForLine(consumer, /^ready /)).trim().split(' ')[1];
      const producer = await client();
      const blob = Buffer.alloc(64 * 1024, 7);
      for (let i = 0; i < BULK; i++) producer.bus.send(signal(name, 'Bulk', [blob], 'ay'));
      await callDriver(producer.bus, 'GetId');
      await control(name);
      const line = waitForLine(consumer, /^(Bulk|Control)/, 20000);
      consumer.stdin?.write('go\n');
      const order = (await line).trim().split(' ');
      expect(order.length).toBe(BULK + 1);
      return order.indexOf('Control');
    } finally {
      await terminate(consumer);
    }
  }

  // dbus-next: SetSendPriority for the connection.
  const perConnection = async (consumer: string): Promise<void> => {
    const urgent = await client();
    await urgent.bus.call(new Message({ ...DRIVER, interface: BUS1, member: 'SetSendPriority', signature: 'x', body: [BigInt(-100)] }));
    urgent.bus.send(signal(consumer, 'Control'));
    await callDriver(urgent.bus, 'GetId');
  };

  // The priority header field, in a message written on a dbus-next connection.
  const perMessage = async (consumer: string): Promise<void> => {
    const urgent = await client();
    const bytes = encodeMessage({
      type: MessageType.Signal,
      serial: urgent.bus.newSerial(),
      fields: [
        [Field.Path, 'o', '/com/example/Flow'],
        [Field.Interface, 's', 'com.example.Flow'],
        [Field.Member, 's', 'Control'],
        [Field.Destination, 's', consumer],
        [PRIORITY_FIELD, 'x', BigInt(-5)],
      ],
    });
    streamOf(urgent).write(bytes);
    await callDriver(urgent.bus, 'GetId');
  };

  // python3-dbus: SetSendPriority, then the signal.
  const fromPython = async (consumer: string): Promise<void> => {
    const script = [
      'import sys, dbus, dbus.lowlevel',
      'b = dbus.bus.BusConnection(sys.argv[1])',
      `b.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "${BUS1}", "SetSendPriority", "x", [dbus.Int64(-1)])`,
      'm = dbus.lowlevel.SignalMessage("/com/example/Flow", "com.example.Flow", "Control")',
      'm.set_destination(sys.argv[2])',
      'b.send_message(m)',
      'b.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId", "", [])',
      'print("sent", flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    const py = spawnTracked(PYTHON, ['-c', script, bus.address, consumer], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await waitForLine(py, /^sent/);
    } finally {
      py.stdin?.end();
      await terminate(py);
    }
  };

  test('without SetReceivePriority, the control message waits behind the bulk (FIFO)', async () => {
    expect(await controlPosition(false, perConnection)).toBe(BULK);
  });

  test('SetSendPriority (dbus-next): the control message overtakes what waits in the bus', async () => {
    // Only what the socket already held, and the one message staged for it, come first.
    expect(await controlPosition(true, perConnection)).toBeLessThan(BULK / 4);
  });

  test('the priority header field of one message (dbus-next connection)', async () => {
    expect(await controlPosition(true, perMessage)).toBeLessThan(BULK / 4);
  });

  test('SetSendPriority (python3-dbus)', async () => {
    expect(await controlPosition(true, fromPython)).toBeLessThan(BULK / 4);
  });

  test('equal priorities keep the global order', async () => {
    const consumer = await client();
    const a = await client();
    await consumer.bus.call(new Message({ ...DRIVER, interface: BUS1, member: 'SetReceivePriority', signature: 'b', body: [true] }));
    const got: number[] = [];
    consumer.bus.on('message', (m: Message) => {
      if (m.member === 'N') got.push(m.body[0] as number);
    });
    streamOf(consumer).pause();
    for (let i = 0; i < 200; i++) a.bus.send(signal(consumer.uniqueName, 'N', [i], 'u'));
    await callDriver(a.bus, 'GetId');
    streamOf(consumer).resume();
    expect(await until(() => got.length === 200, 10000)).toBe(true);
    expect(got).toEqual([...Array(200).keys()]);
  });
});
