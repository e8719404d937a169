import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError, defaultLimits, loadConfig, standardSessionServiceDirs } from '../../bridge/config';
import { parseXml, XmlSyntaxError } from '../../bridge/config/xml';

const DOCTYPE =
  '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n' +
  ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdbus-bridge-config-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function loadError(file: string): ConfigError {
  try {
    loadConfig(file, { warn: () => undefined });
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected the configuration to be refused');
}

describe('XML reader', () => {
  test('entities, CDATA, comments and line numbers', () => {
    const doc = parseXml(
      '<?xml version="1.0"?>\n' + DOCTYPE + '<a x="1 &amp; &lt;2&gt; &quot;&apos;&#65;&#x42;">\n<!-- c -->\n<b>t&amp;<![CDATA[<raw>&amp;]]></b></a>\n',
      'f.conf',
    );
    expect(doc.doctype).toBe('busconfig');
    expect(doc.root.attributes).toEqual([{ name: 'x', value: '1 & <2> "\'AB' }]);
    const b = doc.root.children.find((c) => c.kind === 'element');
    expect(b).toMatchObject({ name: 'b', line: 6, children: [{ kind: 'text', value: 't&<raw>&amp;' }] });
  });

  test.each([
    ['<a>\n<b>\n</a>', 3, /mismatched tag/],
    ['<a>\n<b x="1" x="2"/></a>', 2, /duplicate attribute/],
    ['<a>\n\n&bogus;</a>', 3, /undefined entity/],
    ['<a></a>\n<b/>', 2, /junk after document element/],
    ['<a>\n<b', 2, /unclosed token|not closed/],
    ['', 1, /no element found/],
    ['<a x=1/>', 1, /invalid token/],
  ])('malformed %j is reported at its line', (text, line, reason) => {
    let err: unknown;
    try {
      parseXml(text, 'bad.conf');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(XmlSyntaxError);
    const x = err as XmlSyntaxError;
    expect(x.line).toBe(line);
    expect(x.message).toMatch(new RegExp(`^bad\\.conf:${line}: `));
    expect(x.reason).toMatch(reason);
  });
});

describe('loadConfig', () => {
  // Found by fuzz/config.js: the error had no file and line.
  test('an <includedir> that cannot be read is an error at its line', () => {
    const main = write('unreadable-dir.conf', `<busconfig>\n  <includedir>${'9'.repeat(300)}</includedir>\n</busconfig>`);
    let error: unknown;
    try {
      loadConfig(main, { warn: () => {} });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).location).toEqual({ file: main, line: 2 });
    expect((error as ConfigError).message).toMatch(/:2: Failed to read directory ".*": ENAMETOOLONG/);
  });

  test('a configuration with DOCTYPE, include and includedir merges in document order', () => {
    write('extra/one.conf', DOCTYPE + '<busconfig><listen>tcp:host=localhost</listen><auth>ANONYMOUS</auth></busconfig>');
    write('drop/20-b.conf', '<busconfig><policy context="mandatory"><deny own="b.B"/></policy></busconfig>');
    write('drop/10-a.conf', '<busconfig><policy user="root"><allow own="a.A"/></policy><limit name="max_replies_per_connection">7</limit></busconfig>');
    write('drop/ignored.txt', '<busconfig><bogus/></busconfig>');
    const main = write(
      'main.conf',
      DOCTYPE +
        `<busconfig>
  <!-- comment -->
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <include>extra/one.conf</include>
  <include ignore_missing="yes">missing.conf</include>
  <include if_selinux_enabled="yes" selinux_root_relative="yes">contexts/dbus_contexts</include>
  <includedir>drop</includedir>
  <includedir>no-such-dir</includedir>
  <listen>unix:path=/run/x</listen>
  <auth>EXTERNAL</auth>
  <fork/>
  <keep_umask/>
  <syslog/>
  <allow_anonymous/>
  <user>messagebus</user>
  <pidfile>/run/x.pid</pidfile>
  <servicedir>services</servicedir>
  <servicedir>/abs/services</servicedir>
  <servicedir>services</servicedir>
  <servicehelper>helper</servicehelper>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <deny send_interface="org.x.Y" send_member="Z"/>
    <allow own="*"/>
  </policy>
  <policy at_console="true"><allow send_destination="org.c"/></policy>
  <selinux><associate own="org.a" context="ctx_t"/></selinux>
  <apparmor mode="disabled"/>
  <limit name="max_message_size">  0x100 </limit>
</busconfig>
`,
    );
    const c = loadConfig(main, { warn: () => undefined });
    expect(c.file).toBe(main);
    expect(c.type).toBe('session');
    expect(c.listen).toEqual(['unix:tmpdir=/tmp', 'tcp:host=localhost', 'unix:path=/run/x']);
    expect(c.auth).toEqual(['ANONYMOUS', 'EXTERNAL']);
    expect([c.fork, c.keepUmask, c.syslog, c.allowAnonymous]).toEqual([true, true, true, true]);
    expect(c.user).toBe('messagebus');
    expect(c.pidfile).toBe('/run/x.pid');
    expect(c.serviceDirs).toEqual([path.join(dir, 'services'), '/abs/services']);
    expect(c.serviceHelper).toBe(path.join(dir, 'helper'));
    expect(c.includeDirs).toEqual([path.join(dir, 'drop')]);
    expect(c.policies.map((p) => p.scope)).toEqual([
      { kind: 'user', user: 'root' },
      { kind: 'mandatory' },
      { kind: 'default' },
      { kind: 'at_console', atConsole: true },
    ]);
    const def = c.policies[2];
    expect(def.location).toEqual({ file: main, line: 24 });
    expect(def.rules.map((r) => [r.kind, r.attributes])).toEqual([
      ['allow', [['send_destination', '*'], ['eavesdrop', 'true']]],
      ['deny', [['send_interface', 'org.x.Y'], ['send_member', 'Z']]],
      ['allow', [['own', '*']]],
    ]);
    expect(c.selinuxAssociations).toEqual([{ own: 'org.a', context: 'ctx_t', location: { file: main, line: 30 } }]);
    expect(c.apparmorMode).toBe('disabled');
    expect(c.limits.max_message_size).toBe(256);
    expect(c.limits.max_replies_per_connection).toBe(7);
    expect(c.limits.auth_timeout).toBe(defaultLimits().auth_timeout);
  });

  test('a broken file in an <includedir> is reported and skipped', () => {
    write('d/a.conf', '<busconfig><limit name="auth_timeout">5</limit><bogus/></busconfig>');
    write('d/b.conf', '<busconfig><listen>unix:path=/run/b</listen></busconfig>');
    const main = write('m.conf', '<busconfig><listen>unix:path=/run/a</listen><includedir>d</includedir></busconfig>');
    const warnings: string[] = [];
    const c = loadConfig(main, { warn: (m) => warnings.push(m) });
    expect(c.listen).toEqual(['unix:path=/run/a', 'unix:path=/run/b']);
    expect(c.limits.auth_timeout).toBe(defaultLimits().auth_timeout);
    expect(warnings).toEqual([
      `Encountered error '${path.join(dir, 'd/a.conf')}:1: Element <bogus> not allowed inside <busconfig> in configuration file' while parsing '${path.join(dir, 'd/a.conf')}'`,
    ]);
  });

  test.each([
    ['<busconfig>\n<listen>x:</listen>\n  <bogus/>\n</busconfig>', 3, 'Element <bogus> not allowed inside <busconfig> in configuration file'],
    ['<busconfig>\n<listen>x:</listen>\n<limit name="nosuch">5</limit></busconfig>', 3, 'There is no limit called "nosuch"'],
    ['<busconfig>\n<listen>x:</listen>\n<limit name="auth_timeout">-5</limit></busconfig>', 3, '<limit name="auth_timeout"> must be a positive number'],
    ['<busconfig>\n<listen>x:</listen>\n<limit name="auth_timeout">abc</limit></busconfig>', 3, '<limit name="auth_timeout"> element has invalid value (could not parse as integer)'],
    ['<busconfig>\n<listen>x:</listen>\n<limit name="auth_timeout">4294967296</limit></busconfig>', 3, '<limit name="auth_timeout"> value is too large'],
    ['<busconfig>\n<listen>x:</listen>\n<limit>5</limit></busconfig>', 3, '<limit> element must have a "name" attribute'],
    ['<busconfig>\n<listen>x:</listen>\n\n<user></user></busconfig>', 4, 'XML element <user> was expected to have content inside it'],
    ['<busconfig>\n<listen a="b">x:</listen></busconfig>', 2, 'Attribute "a" is invalid on <listen> element in this context'],
    ['<busconfig>\n<listen>x:</listen>\n<policy context="default">\n<allow foo="x"/></policy></busconfig>', 4, 'Attribute "foo" is invalid on <allow> element in this context'],
    ['<busconfig>\n<listen>x:</listen>\n<policy context="default"><allow/></policy></busconfig>', 3, 'Element <allow> must have one or more attributes'],
    ['<busconfig>\n<listen>x:</listen>\n<policy context="default"><allow send_member="M"/></policy></busconfig>', 3, 'On element <allow>, if you specify a member you must specify an interface or a path. Keep in mind that not all messages have an interface field.'],
    ['<busconfig>\n<listen>x:</listen>\n<policy context="other"/></busconfig>', 3, 'context attribute on <policy> must have the value "default" or "mandatory", not "other"'],
    ['<busconfig>\n<listen>x:</listen>\n<policy context="default" user="root"/></busconfig>', 3, '<policy> element must have exactly one of (context|user|group|at_console) attributes'],
    ['<busconfig>\n<listen>x:</listen>\n<policy at_console="maybe"/></busconfig>', 3, 'Unknown value "maybe" for at_console in message bus configuration file'],
    ['<busconfig>\n<listen>x:</listen>\n<policy context="default"><own x="y"/></policy></busconfig>', 3, 'Element <own> not allowed inside <policy> in configuration file'],
    ['<busconfig>\n<listen>x:</listen>\n<fork>now</fork></busconfig>', 3, 'No text content expected inside XML element fork in configuration file'],
    ['<busconfig>\n<listen>x:</listen>\n<include ignore_missing="perhaps">a.conf</include></busconfig>', 3, 'ignore_missing attribute must have value "yes" or "no"'],
    ['<busconfig>\n<listen>x:<b/></listen></busconfig>', 2, 'Element <b> is not allowed in this context'],
    ['<busconfig>\n<listen>x:</listen>\n<apparmor mode="x"/></busconfig>', 3, 'Mode attribute on <apparmor> must have value "required", "enabled" or "disabled", not "x"'],
    ['\n<config/>', 2, 'Unknown element <config> at root of configuration file'],
    ['<busconfig>\n<type>session</type>\n</busconfig>', 1, 'Configuration file needs one or more <listen> elements giving addresses'],
    ['<busconfig>\n<listen>x:</listen>\n<foo\n</busconfig>', 4, 'not well-formed (invalid token)'],
  ])('error in %j names file and line', (text, line, reason) => {
    const file = write('bad.conf', text);
    const err = loadError(file);
    expect(err.reason).toBe(reason);
    expect(err.location).toEqual({ file, line });
    expect(err.message).toBe(`${file}:${line}: ${reason}`);
  });

  test('errors inside an included file name that file', () => {
    const inner = write('inner.conf', '<busconfig>\n\n<bogus/></busconfig>');
    const main = write('main.conf', '<busconfig><listen>x:</listen><include>inner.conf</include></busconfig>');
    expect(loadError(main).message).toBe(`${inner}:3: Element <bogus> not allowed inside <busconfig> in configuration file`);
  });

  test('a missing include is an error at the include, unless ignore_missing', () => {
    const main = write('main.conf', '<busconfig><listen>x:</listen>\n<include>nope.conf</include></busconfig>');
    expect(loadError(main).message).toBe(`${main}:2: Failed to open "${path.join(dir, 'nope.conf')}": No such file or directory`);
    expect(loadError(path.join(dir, 'absent.conf')).message).toBe(
      `Failed to open "${path.join(dir, 'absent.conf')}": No such file or directory`,
    );
  });

  test('include cycles are detected', () => {
    write('a.conf', '<busconfig><include>b.conf</include></busconfig>');
    write('b.conf', '<busconfig><include>a.conf</include></busconfig>');
    const main = write('main.conf', '<busconfig><listen>x:</listen><include>a.conf</include></busconfig>');
    expect(loadError(main).reason).toBe(`Circular inclusion of file '${path.join(dir, 'a.conf')}'`);
  });

  test('limits carry through includes and the last value wins', () => {
    write('inc.conf', '<busconfig><limit name="max_names_per_connection">9</limit></busconfig>');
    const main = write(
      'main.conf',
      '<busconfig><listen>x:</listen><limit name="max_names_per_connection">3</limit><limit name="auth_timeout">11</limit>' +
        '<include>inc.conf</include><limit name="max_incoming_unix_fds">010</limit></busconfig>',
    );
    const c = loadConfig(main);
    expect(c.limits.max_names_per_connection).toBe(9);
    expect(c.limits.auth_timeout).toBe(11);
    expect(c.limits.max_incoming_unix_fds).toBe(8);
  });

  test('the per-user quotas are limits of their own, with generous defaults', () => {
    const main = write(
      'quota.conf',
      '<busconfig><listen>x:</listen>' +
        '<limit name="max_incoming_bytes_per_user">4096</limit><limit name="max_incoming_unix_fds_per_user">3</limit>' +
        '<limit name="max_names_per_user">5</limit><limit name="max_match_rules_per_user">6</limit>' +
        '<limit name="max_replies_per_user">7</limit></busconfig>',
    );
    const c = loadConfig(main);
    expect(c.limits.max_incoming_bytes_per_user).toBe(4096);
    expect(c.limits.max_incoming_unix_fds_per_user).toBe(3);
    expect(c.limits.max_names_per_user).toBe(5);
    expect(c.limits.max_match_rules_per_user).toBe(6);
    expect(c.limits.max_replies_per_user).toBe(7);
    const d = defaultLimits();
    // A user's share is several connections' worth, never less than one's.
    expect(d.max_incoming_bytes_per_user).toBeGreaterThanOrEqual(4 * d.max_incoming_bytes);
    expect(d.max_incoming_unix_fds_per_user).toBeGreaterThanOrEqual(4 * d.max_incoming_unix_fds);
    expect(d.max_names_per_user).toBeGreaterThanOrEqual(50000);
    expect(d.max_match_rules_per_user).toBeGreaterThanOrEqual(50000);
    expect(d.max_replies_per_user).toBeGreaterThanOrEqual(50000);
    expect(loadError(write('big.conf', '<busconfig><listen>x:</listen><limit name="max_names_per_user">4294967296</limit></busconfig>')).reason).toBe(
      '<limit name="max_names_per_user"> value is too large',
    );
  });

  test('a configuration read through a file descriptor path', () => {
    const file = write('fd.conf', '<busconfig><listen>unix:path=/run/fd</listen></busconfig>');
    const fd = fs.openSync(file, 'r');
    try {
      expect(loadConfig(`/proc/self/fd/${fd}`).listen).toEqual(['unix:path=/run/fd']);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('standard session service directories follow the XDG variables', () => {
    expect(
      standardSessionServiceDirs({ XDG_RUNTIME_DIR: '/run/user/5', XDG_DATA_HOME: '/h/data', XDG_DATA_DIRS: '/d1:/usr/share', HOME: '/h' }),
    ).toEqual([
      '/run/user/5/dbus-1/services',
      '/h/data/dbus-1/services',
      '/d1/dbus-1/services',
      '/usr/share/dbus-1/services',
      '/usr/share/dbus-1/services',
    ]);
    expect(standardSessionServiceDirs({ HOME: '/home/u' })).toEqual([
      '/home/u/.local/share/dbus-1/services',
      '/usr/local/share/dbus-1/services',
      '/usr/share/dbus-1/services',
      '/usr/share/dbus-1/services',
    ]);
    const main = write('s.conf', '<busconfig><listen>x:</listen><standard_session_servicedirs/></busconfig>');
    expect(loadConfig(main, { env: { HOME: '/home/u' } }).serviceDirs).toEqual([
      '/home/u/.local/share/dbus-1/services',
      '/usr/local/share/dbus-1/services',
      '/usr/share/dbus-1/services',
    ]);
    const sys = write('y.conf', '<busconfig><listen>x:</listen><standard_system_servicedirs/></busconfig>');
    expect(loadConfig(sys).serviceDirs).toEqual([
      '/usr/local/share/dbus-1/system-services',
      '/usr/share/dbus-1/system-services',
      '/lib/dbus-1/system-services',
    ]);
  });

  const machineConfigs = ['/usr/share/dbus-1/session.conf', '/usr/share/dbus-1/system.conf'].filter((f) => fs.existsSync(f));
  test.each(machineConfigs)('this machine\'s %s loads', (file) => {
    const warnings: string[] = [];
    const c = loadConfig(file, { warn: (m) => warnings.push(m) });
    expect(c.listen.length).toBeGreaterThan(0);
    expect(c.policies.length).toBeGreaterThan(0);
    expect(warnings).toEqual([]);
    if (file.endsWith('session.conf')) {
      expect(c.type).toBe('session');
      expect(c.limits.max_incoming_bytes).toBe(1000000000);
      expect(c.limits.max_names_per_connection).toBe(50000);
    } else {
      expect(c.type).toBe('system');
      expect(c.fork).toBe(true);
    }
  });
});
