import { chmodSync, readFileSync } from 'fs';
import { join } from 'path';
import { startBus, RunningBus } from '../helpers/bus';
import { connect } from '../helpers/client';
import { run, spawnTracked, terminate, waitForLine } from '../helpers/processes';
import { PYTHON, fixture, startService, RunningService, TEST_PATH } from '../helpers/service';

jest.setTimeout(60000);

const REFERENCE_DAEMON = '/usr/bin/dbus-daemon';
const AS_NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];

function config(policy: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={dir}/bus</listen>
  <auth>EXTERNAL</auth>
${policy}
</busconfig>
`;
}

const PERMISSIVE = `
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>`;

interface Outcome {
  ok: boolean;
  error?: string;
  text: string;
}

async function dbusSend(address: string, args: string[], asNobody = false): Promise<Outcome> {
  const argv = ['dbus-send', '--session', '--print-reply', ...args];
  const r = asNobody
    ? await run(AS_NOBODY[0], [...AS_NOBODY.slice(1), ...argv], { address })
    : await run(argv[0], argv.slice(1), { address });
  const m = /^Error ([^:\s]+): ([\s\S]*)$/m.exec(r.stderr);
  return { ok: r.code === 0, error: m?.[1], text: (m?.[2] ?? r.stderr).trim() };
}

// A bus socket others than root may reach.
function openToAll(bus: RunningBus): void {
  chmodSync(bus.dir, 0o755);
  chmodSync(join(bus.dir, 'bus'), 0o777);
}

describe('security policy', () => {
  let bus: RunningBus | undefined;
  const services: RunningService[] = [];

  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop();
    await bus?.stop();
    bus = undefined;
  });

  it('refuses a method call to a denied destination with AccessDenied', async () => {
    bus = await startBus({ config: config(`${PERMISSIVE}
  <policy context="default"><deny send_destination="com.example.Denied"/></policy>`) });
    services.push(await startService(bus.address, 'com.example.Denied'));
    services.push(await startService(bus.address, 'com.example.Open'));
    const denied = await dbusSend(bus.address, ['--dest=com.example.Denied', TEST_PATH, 'com.example.Test.Echo', 'string:hi']);
    expect(denied.ok).toBe(false);
    expect(denied.error).toBe('org.freedesktop.DBus.Error.AccessDenied');
    expect(denied.text).toMatch(
      /^Rejected send message, 2 matched rules; type="method_call", sender=":1\.\d+" \(uid=0 pid=\d+ comm="dbus-send [^"]*"( label="[^"]*")?\) interface="com\.example\.Test" member="Echo" error name="\(unset\)" requested_reply="0" destination="com\.example\.Denied" \(uid=0 pid=\d+ comm="[^"]*"( label="[^"]*")?\)$/,
    );
    const open = await dbusSend(bus.address, ['--dest=com.example.Open', TEST_PATH, 'com.example.Test.Echo', 'string:hi']);
    expect(open.ok).toBe(true);
  });

  it('refuses RequestName for a name the policy does not let the caller own', async () => {
    bus = await startBus({ config: config(`${PERMISSIVE}
  <policy context="default"><deny own_prefix="com.example.Kept"/></policy>`) });
    const r = await dbusSend(bus.address, [
      '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.RequestName',
      'string:com.example.Kept.Inner', 'uint32:4',
    ]);
    expect(r.error).toBe('org.freedesktop.DBus.Error.AccessDenied');
    expect(r.text).toMatch(
      /^Connection ":1\.\d+" is not allowed to own the service "com\.example\.Kept\.Inner" due to security policies in the configuration file$/,
    );
    const other = await dbusSend(bus.address, [
      '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.RequestName',
      'string:com.example.KeptNot', 'uint32:4',
    ]);
    expect(other.ok).toBe(true);
  });

  it('refuses a call the receiver may not receive', async () => {
    bus = await startBus({ config: config(`${PERMISSIVE}
  <policy context="default"><deny receive_interface="com.example.Test" receive_member="Fail"/></policy>`) });
    services.push(await startService(bus.address, 'com.example.Service'));
    const r = await dbusSend(bus.address, ['--dest=com.example.Service', TEST_PATH, 'com.example.Test.Fail', 'string:x']);
    expect(r.error).toBe('org.freedesktop.DBus.Error.AccessDenied');
    expect(r.text).toMatch(/^Rejected receive message, 2 matched rules; type="method_call", .* member="Fail" .*destination="com\.example\.Service"/);
    const echo = await dbusSend(bus.address, ['--dest=com.example.Service', TEST_PATH, 'com.example.Test.Echo', 'string:x']);
    expect(echo.ok).toBe(true);
  });

  it('drops denied signals silently', async () => {
    bus = await startBus({ config: config(`${PERMISSIVE}
  <policy context="default"><deny send_interface="com.example.Blocked"/></policy>`) });
    const listener = await connect(bus.address);
    try {
      const seen: string[] = [];
      listener.bus.on('message', (m) => {
        if (m.interface?.startsWith('com.example.')) seen.push(`${m.interface}.${m.member}`);
      });
      for (const iface of ['com.example.Blocked', 'com.example.Open']) {
        await listener.bus.call(
          new (require('dbus-next').Message)({
            destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus',
            member: 'AddMatch', signature: 's', body: [`type='signal',interface='${iface}'`],
          }),
        );
      }
      const sendSignal = (iface: string) =>
        run('dbus-send', ['--session', '--type=signal', '/x', `${iface}.Ping`], { address: bus!.address });
      const blocked = await sendSignal('com.example.Blocked');
      expect(blocked.code).toBe(0);
      await sendSignal('com.example.Open');
      const deadline = Date.now() + 5000;
      while (!seen.includes('com.example.Open.Ping') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual(['com.example.Open.Ping']);
    } finally {
      listener.bus.disconnect();
    }
  });

  it('lets only the users the policy allows connect', async () => {
    bus = await startBus({ config: config(`
  <policy context="default">
    <allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/>
  </policy>`) });
    openToAll(bus);
    const args = ['--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.GetId'];
    expect((await dbusSend(bus.address, args)).ok).toBe(true);
    expect((await dbusSend(bus.address, args, true)).ok).toBe(false);
    await bus.stop();

    bus = await startBus({ config: config(`
  <policy context="default">
    <allow user="nobody"/>
    <allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/>
  </policy>`) });
    openToAll(bus);
    expect((await dbusSend(bus.address, args, true)).ok).toBe(true);
  });

  describe('the system bus policy of this machine', () => {
    // system.conf as installed, made to run unprivileged in a directory of its own.
    function systemConfig(): string {
      return readFileSync('/usr/share/dbus-1/system.conf', 'utf8')
        .replace(/<user>[^<]*<\/user>|<fork\/>|<pidfile>[^<]*<\/pidfile>|<syslog\/>|<servicehelper>[^<]*<\/servicehelper>|<standard_system_servicedirs\/>/g, '')
        .replace(/<listen>[^<]*<\/listen>/, '<listen>unix:path={dir}/bus</listen>')
        .replace('<includedir>system.d</includedir>', '<includedir>/usr/share/dbus-1/system.d</includedir>')
        .replace(/<include if_selinux_enabled[^>]*>[^<]*<\/include>/, '');
    }

    async function decisions(daemon: string | undefined): Promise<Record<string, string>> {
      const saved = process.env.KDBUS_BRIDGE_TEST_DAEMON;
      if (daemon !== undefined) process.env.KDBUS_BRIDGE_TEST_DAEMON = daemon;
      let b: RunningBus;
      try {
        b = await startBus({ config: systemConfig() });
      } finally {
        if (saved === undefined) delete process.env.KDBUS_BRIDGE_TEST_DAEMON;
        else process.env.KDBUS_BRIDGE_TEST_DAEMON = saved;
      }
      openToAll(b);
      const service = spawnTracked(PYTHON, [fixture('echo_service.py'), b.address, 'org.freedesktop.hostname1']);
      try {
        await waitForLine(service, /^ready /);
        const driver = ['--dest=org.freedesktop.DBus', '/org/freedesktop/DBus'];
        const cases: Record<string, string[]> = {
          GetId: [...driver, 'org.freedesktop.DBus.GetId'],
          Ping: [...driver, 'org.freedesktop.DBus.Peer.Ping'],
          Stats: [...driver, 'org.freedesktop.DBus.Debug.Stats.GetStats'],
          UpdateEnv: [...driver, 'org.freedesktop.DBus.UpdateActivationEnvironment', 'dict:string:string:A,B'],
          Own: [...driver, 'org.freedesktop.DBus.RequestName', 'string:org.freedesktop.timedate1', 'uint32:4'],
          MadeUp: ['--dest=com.example.Made.Up', '/', 'com.example.Nothing.Here'],
          Introspect: ['--dest=org.freedesktop.hostname1', TEST_PATH, 'org.freedesktop.DBus.Introspectable.Introspect'],
          Echo: ['--dest=org.freedesktop.hostname1', TEST_PATH, 'com.example.Test.Echo', 'string:x'],
        };
        const out: Record<string, string> = {};
        for (const [name, args] of Object.entries(cases)) {
          for (const nobody of [false, true]) {
            const r = await dbusSend(b.address, args, nobody);
            const rules = /^Rejected (send|receive) message, (\d+) matched rules/.exec(r.text);
            out[`${name} as ${nobody ? 'nobody' : 'root'}`] = r.ok ? 'ok' : `${r.error ?? r.text}${rules ? ` (${rules[1]}, ${rules[2]} rules)` : ''}`;
          }
        }
        return out;
      } finally {
        await terminate(service);
        await b.stop();
      }
    }

    it('decides as dbus-daemon does for root and for nobody', async () => {
      const expected = await decisions(REFERENCE_DAEMON);
      const actual = await decisions(undefined);
      expect(actual).toEqual(expected);
      // The table is only worth something if it holds both answers.
      expect(Object.values(expected)).toContain('ok');
      expect(Object.values(expected).some((v) => v.startsWith('org.freedesktop.DBus.Error.AccessDenied'))).toBe(true);
    });
  });
});
