import {
  listenAddresses,
  parseCommandLine,
  parseDescriptor,
  SESSION_CONFIG_FILE,
  shouldFork,
  SYSTEM_CONFIG_FILE,
  CliResult,
  CliOptions,
} from '../../bridge/cli';

function run(...argv: string[]): CliOptions {
  const r = parseCommandLine(argv);
  if (r.kind !== 'run') throw new Error(`expected run, got ${JSON.stringify(r)}`);
  return r.options;
}

function error(...argv: string[]): Extract<CliResult, { kind: 'error' }> {
  const r = parseCommandLine(argv);
  if (r.kind !== 'error') throw new Error(`expected error, got ${JSON.stringify(r)}`);
  return r;
}

describe('config file selection', () => {
  test('--session and --system pick the distribution files', () => {
    expect(run('--session').configFile).toBe(SESSION_CONFIG_FILE);
    expect(run('--system').configFile).toBe(SYSTEM_CONFIG_FILE);
  });

  test('--config-file=FILE and --config-file FILE', () => {
    expect(run('--config-file=/a/b.conf').configFile).toBe('/a/b.conf');
    expect(run('--config-file', '/c/d.conf').configFile).toBe('/c/d.conf');
    expect(run('--config-file=/proc/self/fd/7').configFile).toBe('/proc/self/fd/7');
  });

  test('no configuration is an error with the usage line', () => {
    expect(error()).toEqual({ kind: 'error', message: 'No configuration file specified.', usage: true });
    expect(error('--nofork')).toEqual({ kind: 'error', message: 'No configuration file specified.', usage: true });
    expect(error('--config-file=').message).toBe('No configuration file specified.');
  });

  test('two configuration files are refused with the first one named', () => {
    expect(error('--session', '--system').message).toBe(
      `--system specified but configuration file ${SESSION_CONFIG_FILE} already requested`,
    );
    expect(error('--config-file=/x', '--config-file', '/y').message).toBe(
      '--config-file specified but configuration file /x already requested',
    );
  });

  test('an option right after a bare --config-file is still that option', () => {
    // dbus-daemon tests --session before "previous word was --config-file".
    expect(run('--config-file', '--session').configFile).toBe(SESSION_CONFIG_FILE);
  });
});

describe('--address', () => {
  test('both forms', () => {
    expect(run('--session', '--address=unix:path=/tmp/x').address).toBe('unix:path=/tmp/x');
    expect(run('--session', '--address', 'unix:abstract=y,guid=0').address).toBe('unix:abstract=y,guid=0');
  });

  test('an empty --address= means none', () => {
    expect(run('--session', '--address=').address).toBeUndefined();
  });

  test('a second address is refused', () => {
    expect(error('--session', '--address=a:', '--address=b:').message).toBe(
      '--address specified but address a: already requested',
    );
  });

  test('--address overrides the configuration <listen> list, else the list in order', () => {
    const config = { listen: ['unix:tmpdir=/tmp', 'tcp:host=localhost'] };
    expect(listenAddresses(run('--session', '--address=unix:path=/run/b'), config)).toEqual(['unix:path=/run/b']);
    expect(listenAddresses(run('--session'), config)).toEqual(['unix:tmpdir=/tmp', 'tcp:host=localhost']);
  });
});

describe('--print-address and --print-pid', () => {
  test('without a value they print to standard output', () => {
    expect(run('--session', '--print-address').printAddressFd).toBe(1);
    expect(run('--print-pid', '--session').printPidFd).toBe(1);
  });

  test('=FD and a following word', () => {
    expect(run('--session', '--print-address=5').printAddressFd).toBe(5);
    expect(run('--session', '--print-address', '7').printAddressFd).toBe(7);
    expect(run('--session', '--print-pid=4').printPidFd).toBe(4);
    expect(run('--session', '--print-pid', '4').printPidFd).toBe(4);
    expect(run('--print-pid', '4', '--session').printPidFd).toBe(4);
  });

  test('an empty =FD is standard output', () => {
    expect(run('--session', '--print-address=').printAddressFd).toBe(1);
  });

  test('the word after a bare --print-address is its descriptor even if it looks like an option', () => {
    expect(error('--print-address', '--print-pid', '--session')).toEqual({
      kind: 'error',
      message: 'Invalid file descriptor: "--print-pid"',
      usage: false,
    });
    expect(error('--session', '--print-address', 'foo').message).toBe('Invalid file descriptor: "foo"');
  });

  test('options tested before the descriptor rule still work after a bare --print-address', () => {
    const o = run('--print-address', '--nofork', '--session');
    expect(o.printAddressFd).toBe(1);
    expect(o.fork).toBe('never');
  });

  test('--print-pid then --print-address: both to standard output', () => {
    const o = run('--session', '--print-pid', '--print-address');
    expect(o.printPidFd).toBe(1);
    expect(o.printAddressFd).toBe(1);
  });

  test('descriptors are read like strtol base 0 over the whole word', () => {
    expect(parseDescriptor('010')).toBe(8);
    expect(parseDescriptor('0x9')).toBe(9);
    expect(parseDescriptor(' 5')).toBe(5);
    expect(parseDescriptor('+5')).toBe(5);
    expect(parseDescriptor('-1')).toBeUndefined();
    expect(parseDescriptor('5x')).toBeUndefined();
    expect(parseDescriptor('08')).toBeUndefined();
    expect(parseDescriptor('2147483648')).toBeUndefined();
    expect(error('--session', '--print-pid=-1').message).toBe('Invalid file descriptor: "-1"');
  });

  test('a second descriptor is refused', () => {
    expect(error('--session', '--print-address=1', '--print-address', '1').message).toBe(
      '--print-address specified but printing address to 1 already requested',
    );
    expect(error('--session', '--print-pid=3', '--print-pid=4').message).toBe(
      '--print-pid specified but printing pid to 3 already requested',
    );
  });
});

describe('switches', () => {
  test('defaults leave fork and syslog to the configuration', () => {
    const o = run('--session');
    expect(o).toEqual({
      configFile: SESSION_CONFIG_FILE,
      address: undefined,
      printAddressFd: undefined,
      printPidFd: undefined,
      fork: 'config',
      writePidfile: true,
      syslog: 'config',
      syslogOnly: false,
      systemdActivation: false,
    });
  });

  test('the last of --fork/--nofork wins', () => {
    expect(run('--session', '--fork').fork).toBe('always');
    expect(run('--session', '--nofork').fork).toBe('never');
    expect(run('--session', '--nofork', '--fork').fork).toBe('always');
    expect(run('--session', '--fork', '--nofork').fork).toBe('never');
  });

  test('fork decision combines the command line with <fork/>', () => {
    expect(shouldFork(run('--session'), { fork: true })).toBe(true);
    expect(shouldFork(run('--session'), { fork: false })).toBe(false);
    expect(shouldFork(run('--session', '--nofork'), { fork: true })).toBe(false);
    expect(shouldFork(run('--session', '--fork'), { fork: false })).toBe(true);
  });

  test('syslog switches', () => {
    expect(run('--session', '--syslog').syslog).toBe('always');
    expect(run('--session', '--nosyslog').syslog).toBe('never');
    const only = run('--session', '--syslog-only');
    expect(only.syslog).toBe('always');
    expect(only.syslogOnly).toBe(true);
    expect(run('--session', '--syslog-only', '--nosyslog').syslog).toBe('never');
  });

  test('--nopidfile and --systemd-activation', () => {
    expect(run('--session', '--nopidfile').writePidfile).toBe(false);
    expect(run('--session', '--systemd-activation').systemdActivation).toBe(true);
  });
});

describe('terminal options and unknown words', () => {
  test('--help, -h and -? ask for the usage', () => {
    for (const h of ['--help', '-h', '-?']) expect(parseCommandLine([h])).toEqual({ kind: 'help' });
  });

  test('--version and --introspect need no configuration', () => {
    expect(parseCommandLine(['--version'])).toEqual({ kind: 'version' });
    expect(parseCommandLine(['--introspect'])).toEqual({ kind: 'introspect' });
  });

  test('they act where they appear: an earlier error wins, a later one is never seen', () => {
    expect(parseCommandLine(['--session', '--system', '--version']).kind).toBe('error');
    expect(parseCommandLine(['--version', '--session', '--system'])).toEqual({ kind: 'version' });
    expect(parseCommandLine(['--version', '--bogus'])).toEqual({ kind: 'version' });
  });

  test('unknown options and stray words print only the usage', () => {
    expect(error('--session', '--bogus')).toEqual({ kind: 'error', message: undefined, usage: true });
    expect(error('stray')).toEqual({ kind: 'error', message: undefined, usage: true });
    expect(error('--session=yes').usage).toBe(true);
    expect(error('--fork=yes').usage).toBe(true);
  });
});
