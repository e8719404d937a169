/**
 * What the service manager that started the bus (systemd, through
 * NOTIFY_SOCKET) is told, as dbus-daemon tells it: READY=1 once the
 * addresses accept clients, RELOADING=1 then READY=1 around each reload
 * (also one that fails), STOPPING=1 on the way out. Without NOTIFY_SOCKET
 * nothing is sent.
 */
import { log } from './log';

let socket: string | undefined;

/**
 * Takes NOTIFY_SOCKET out of the environment: the socket is the bus's, and
 * the services the bus starts must not report to it in the bus's name.
 */
export function takeNotifySocket(env: NodeJS.ProcessEnv = process.env): void {
  const value = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  socket = value !== undefined && value !== '' ? value : undefined;
}

function notify(state: string): void {
  if (socket === undefined) return;
  // Loaded lazily: a bus nobody supervises does not need it at this point.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { native } = require('./native') as typeof import('./native');
  const rc = native.notify(socket, state);
  if (rc !== 0) log.warn(`Unable to notify the service manager at ${socket} (errno ${rc})`);
}

export const serviceManager = {
  ready: (): void => notify('READY=1'),
  reloading: (): void => notify('RELOADING=1'),
  stopping: (): void => notify('STOPPING=1'),
  /** Runs a reload between RELOADING=1 and READY=1, whatever its outcome. */
  reload<T>(work: () => T): T {
    notify('RELOADING=1');
    try {
      return work();
    } finally {
      notify('READY=1');
    }
  },
};
