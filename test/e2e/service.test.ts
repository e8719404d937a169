import { Message, MessageType } from 'dbus-next';
import { RunningBus, startBus } from '../helpers/bus';
import { addMatch, callError, Client, connect, sync } from '../helpers/client';
import { run } from '../helpers/processes';
import { RunningService, startService, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

const NAME = 'com.example.EchoService';
const TEXT = 'héllo, wörld: 1 2 3';

let bus: RunningBus;
let service: RunningService;
const clients: Client[] = [];

beforeAll(async () => {
  bus = await startBus();
  service = await startService(bus.address, NAME);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await service?.stop();
  await bus?.stop();
});

async function client(): Promise<Client> {
  const c = await connect(bus.address);
  clients.push(c);
  return c;
}

function call(member: string, signature: string, body: unknown[]): Message {
  return new Message({ destination: NAME, path: TEST_PATH, interface: TEST_INTERFACE, member, signature, body });
}

// Each program is asked to echo, to fail, and to make the service emit
// Event(first, second); the test only relies on what the program prints.
interface Tool {
  echo(text: string): Promise<string>;
  fail(text: string): Promise<{ name?: string; message: string }>;
  emit(first: string, second: string): Promise<void>;
}

function expectOk(r: { code: number | null; stdout: string; stderr: string }): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const tools: Record<string, () => Tool> = {
  'dbus-send': () => {
    const send = (member: string, ...args: string[]) =>
      run('dbus-send', ['--session', '--print-reply', `--dest=${NAME}`, TEST_PATH, `${TEST_INTERFACE}.${member}`, ...args], { address: bus.address });
    return {
      async echo(text) {
        const out = expectOk(await send('Echo', `string:${text}`));
        return out.match(/^\s+string "(.*)"$/m)![1];
      },
      async fail(text) {
        const r = await send('Fail', `string:${text}`);
        expect(r.code).not.toBe(0);
        const m = r.stderr.match(/^Error (\S+): (.*)$/m)!;
        return { name: m[1], message: m[2] };
      },
      async emit(first, second) {
        expectOk(await send('EmitEvent', `string:${first}`, `string:${second}`));
      },
    };
  },
  gdbus: () => {
    const gcall = (member: string, ...args: string[]) =>
      run('gdbus', ['call', '--session', '--dest', NAME, '--object-path', TEST_PATH, '--method', `${TEST_INTERFACE}.${member}`, ...args], {
        address: bus.address,
      });
    return {
      async echo(text) {
        const out = expectOk(await gcall('Echo', text));
        return out.match(/^\('(.*)',\)$/m)![1];
      },
      async fail(text) {
        const r = await gcall('Fail', text);
        expect(r.code).not.toBe(0);
        const m = r.stderr.match(/GDBus\.Error:([^:]+): (.*)$/m)!;
        return { name: m[1], message: m[2] };
      },
      async emit(first, second) {
        expectOk(await gcall('EmitEvent', first, second));
      },
    };
  },
  busctl: () => {
    const bcall = (member: string, signature: string, ...args: string[]) =>
      run('busctl', ['--user', '--json=short', 'call', NAME, TEST_PATH, TEST_INTERFACE, member, signature, ...args], { address: bus.address });
    return {
      async echo(text) {
        const out = expectOk(await bcall('Echo', 's', text));
        return (JSON.parse(out) as { data: string[] }).data[0];
      },
      async fail(text) {
        const r = await bcall('Fail', 's', text);
        expect(r.code).not.toBe(0);
        // busctl prints the error's message but not its name.
        return { message: r.stderr.match(/^Call failed: (.*)$/m)![1] };
      },
      async emit(first, second) {
        expectOk(await bcall('EmitEvent', 'ss', first, second));
      },
    };
  },
  'dbus-next': () => ({
    async echo(text) {
      const c = await client();
      const reply = await c.bus.call(call('Echo', 's', [text]));
      expect(reply!.signature).toBe('s');
      return reply!.body[0] as string;
    },
    async fail(text) {
      const c = await client();
      const e = await callError(c.bus, call('Fail', 's', [text]));
      return { name: e.name, message: e.text };
    },
    async emit(first, second) {
      const c = await client();
      await c.bus.call(call('EmitEvent', 'ss', [first, second]));
    },
  }),
};

function events(c: Client): string[][] {
  return c.received
    .filter((m) => m.type === MessageType.SIGNAL && m.interface === TEST_INTERFACE && m.member === 'Event')
    .map((m) => {
      expect(m.sender).toBe(service.uniqueName);
      expect(m.path).toBe(TEST_PATH);
      return m.body as string[];
    });
}

describe.each(Object.keys(tools))('the python3-dbus service called by %s', (toolName) => {
  let tool: Tool;
  beforeAll(() => {
    tool = tools[toolName]();
  });

  test('echo returns the same string', async () => {
    expect(await tool.echo(TEXT)).toBe(TEXT);
    expect(await tool.echo(`${toolName} says ${TEXT}`)).toBe(`${toolName} says ${TEXT}`);
  });

  test('an error arrives with its name and message', async () => {
    const e = await tool.fail(`${toolName} broke it`);
    expect(e.message).toBe(`${toolName} broke it`);
    if (e.name !== undefined) expect(e.name).toBe('com.example.Error.Failed');
  });

  test('signals reach only the match rules they satisfy, including arg0', async () => {
    const filtered = await client();
    const everything = await client();
    const otherMember = await client();
    await addMatch(filtered.bus, `type='signal',interface='${TEST_INTERFACE}',member='Event',arg0='yes'`);
    await addMatch(everything.bus, `type='signal',sender='${NAME}',interface='${TEST_INTERFACE}',member='Event'`);
    await addMatch(otherMember.bus, `type='signal',interface='${TEST_INTERFACE}',member='SomethingElse'`);

    await tool.emit('no', toolName);
    await tool.emit('yes', toolName);
    await Promise.all([filtered, everything, otherMember].map((c) => sync(c.bus)));

    expect(events(filtered)).toEqual([['yes', toolName]]);
    expect(events(everything)).toEqual([
      ['no', toolName],
      ['yes', toolName],
    ]);
    expect(events(otherMember)).toEqual([]);
  });
});
