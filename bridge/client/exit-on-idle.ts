// Race-free exit on idle for a service written with dbus-next: once nothing
// has come in for idleMs and every call it got is answered, it says ByeBye.
// The bus accepts only when nothing waits for the service in the bus, and
// then releases its names at once (an activatable name goes back to its
// activator), so no call is lost between "idle" and "gone".
import { Message, MessageBus } from 'dbus-next';
import { BUS1_BUSY, callBus1 } from './bus1';

const METHOD_CALL = 1;
const METHOD_RETURN = 2;
const ERROR = 3;
const NO_REPLY_EXPECTED = 1;

export interface ExitOnIdleOptions {
  /** How long without incoming calls before trying to leave. */
  idleMs: number;
}

/**
 * Watches `bus` and leaves the bus once idle. The promise resolves once the
 * connection is closed with every answer written: the process can exit
 * then. It rejects when the bus has no ByeBye (not kdbus-bridge), leaving
 * the connection as it was.
 */
export function exitOnIdle(bus: MessageBus, options: ExitOnIdleOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    // Calls received and not answered yet, by "sender serial".
    const open = new Set<string>();
    // serving -> asking (ByeBye sent) -> closing (accepted: answer what is
    // open, then go) -> closed; Busy goes back to serving.
    let state: 'serving' | 'asking' | 'closing' | 'closed' = 'serving';
    let timer: NodeJS.Timeout | undefined;
    const key = (sender: string, serial: number | string | null): string => `${sender} ${serial}`;
    const send = bus.send.bind(bus);

    const arm = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (state === 'serving' && open.size === 0) timer = setTimeout(ask, options.idleMs);
    };

    const finish = (): void => {
      if (state !== 'closing' || open.size > 0) return;
      state = 'closed';
      // dbus-next has no close event of its own; its socket closes once the
      // bus has read everything up to the end.
      const stream = (bus as unknown as { _connection: { stream: NodeJS.EventEmitter } })._connection.stream;
      stream.once('close', () => resolve());
      bus.disconnect();
    };

    const ask = (): void => {
      timer = undefined;
      state = 'asking';
      callBus1(bus, 'ByeBye').then(
        () => {
          state = 'closing';
          finish();
        },
        (e: { type?: string }) => {
          state = 'serving';
          if (e?.type === BUS1_BUSY) {
            arm();
            return;
          }
          bus.off('message', onMessage);
          bus.send = send;
          reject(e);
        },
      );
    };

    // 'message' comes before dbus-next dispatches a call to its handler.
    const onMessage = (msg: Message): void => {
      if (msg.type !== METHOD_CALL) return;
      if (!(msg.flags & NO_REPLY_EXPECTED)) open.add(key(msg.sender, msg.serial));
      arm();
    };
    bus.on('message', onMessage);

    bus.send = (msg: Message): void => {
      send(msg);
      if (msg.type !== METHOD_RETURN && msg.type !== ERROR) return;
      if (!open.delete(key(msg.destination, msg.replySerial))) return;
      if (state === 'serving') arm();
      else if (state === 'closing') finish();
    };
    arm();
  });
}
