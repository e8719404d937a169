// Names of the org.kdbusbridge.Bus1 extension, shared by the client helpers.
import { Message, MessageBus } from 'dbus-next';

export const BUS1_INTERFACE = 'org.kdbusbridge.Bus1';
export const BUS1_BUSY = 'org.kdbusbridge.Error.Busy';
export const BUS_NAME = 'org.freedesktop.DBus';
export const BUS_PATH = '/org/freedesktop/DBus';

/** Calls a method of org.kdbusbridge.Bus1 on the bus driver. */
export async function callBus1(bus: MessageBus, member: string, signature = '', body: unknown[] = []): Promise<Message | null> {
  return bus.call(
    new Message({ destination: BUS_NAME, path: BUS_PATH, interface: BUS1_INTERFACE, member, signature, body }),
  );
}
