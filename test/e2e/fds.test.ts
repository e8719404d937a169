import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { RunningBus, startBus } from '../helpers/bus';
import { run } from '../helpers/processes';
import { fixture, PYTHON, RunningService, startService, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

const NAME = 'com.example.FdService';

let bus: RunningBus;
let service: RunningService;
let scratch: string;

beforeAll(async () => {
  bus = await startBus();
  service = await startService(bus.address, NAME);
  scratch = mkdtempSync(join(tmpdir(), 'kdbus-bridge-fds-'));
});

afterAll(async () => {
  await service?.stop();
  await bus?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('unix file descriptors travel through the bus', () => {
  test('gdbus hands an open file to the service, which reads it', async () => {
    const content = `file content ${process.pid} ${Date.now()}\n`;
    const file = join(scratch, 'passed.txt');
    writeFileSync(file, content);
    const fd = openSync(file, 'r');
    try {
      // "@h 3" makes gdbus attach its descriptor 3 to the message.
      const r = await run(
        'gdbus',
        ['call', '--session', '--dest', NAME, '--object-path', TEST_PATH, '--method', `${TEST_INTERFACE}.ReadFd`, '@h 3'],
        { address: bus.address, extraFds: [fd] },
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(`(${JSON.stringify(content).replace(/"/g, "'")},)`);
    } finally {
      closeSync(fd);
    }
  });

  test('python3-dbus clients pass pipes in both directions', async () => {
    const text = `through a pipe ${Date.now()}`;
    const r = await run(PYTHON, [fixture('fd_client.py'), bus.address, NAME, text]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').slice(0, 2)).toEqual([text, [...text].reverse().join('')]);
  });
});
