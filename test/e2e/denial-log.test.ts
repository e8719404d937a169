import { basename } from 'path';
import { daemonPath, RunningBus, startBus } from '../helpers/bus';
import { run } from '../helpers/processes';
import { RunningService, startService } from '../helpers/service';

// What the security policy refuses is logged as dbus-daemon logs it: the
// AccessDenied text, after the program's name and pid and the bus's prefix
// ("[session uid=U pid=P] "), on standard error (and syslog with --syslog).

const NAME = 'c.D';

const CONFIG = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <deny send_interface="c.D" send_member="E"/>
  </policy>
</busconfig>
`;

let bus: RunningBus;
let service: RunningService;
let stderr = '';

beforeAll(async () => {
  bus = await startBus({ config: CONFIG });
  bus.process.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  service = await startService(bus.address, NAME);
});

afterAll(async () => {
  await service?.stop();
  await bus?.stop();
});

test('a refused call is logged with the text its sender gets', async () => {
  // A command line shorter than what a log shows of it: its end is exact.
  const r = await run('dbus-send', ['--print-reply', `--dest=${NAME}`, '/', 'c.D.E'], { address: bus.address });
  const m = /^Error org\.freedesktop\.DBus\.Error\.AccessDenied: (.*)$/m.exec(r.stderr);
  expect(m).not.toBeNull();
  const text = m![1];
  expect(text).toMatch(
    /^Rejected send message, \d+ matched rules; type="method_call", sender=":1\.\d+" \(uid=0 pid=\d+ comm="dbus-send --print-reply --dest=c\.D \/ c\.D\.E"( label="[^"]*")?\) interface="c\.D" member="E" error name="\(unset\)" requested_reply="0" destination="c\.D" \(uid=0 pid=\d+ comm="[^"]*"( label="[^"]*")?\)$/,
  );
  // The bus writes its log line before it answers.
  const program = basename(daemonPath());
  expect(stderr.split('\n')).toContain(`${program}[${bus.pid}]: [session uid=0 pid=${bus.pid}] ${text}`);
});
