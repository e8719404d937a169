/**
 * User and group names as the policy refers to them, resolved the way
 * dbus-daemon does: a name from the account databases, or a plain number.
 * Reads /etc/passwd and /etc/group (no NSS modules), once per compilation.
 */
import * as fs from 'fs';

export interface Accounts {
  uid(name: string): number | undefined;
  gid(name: string): number | undefined;
}

function readIds(file: string): Map<string, number> {
  const ids = new Map<string, number>();
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return ids;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3 || fields[0] === '' || line.startsWith('#')) continue;
    const id = Number(fields[2]);
    // The first entry for a name wins, as getpwnam() finds it.
    if (Number.isInteger(id) && id >= 0 && !ids.has(fields[0])) ids.set(fields[0], id);
  }
  return ids;
}

function numeric(name: string): number | undefined {
  return /^[0-9]+$/.test(name) && Number(name) <= 0xffffffff ? Number(name) : undefined;
}

export function systemAccounts(passwd = '/etc/passwd', group = '/etc/group'): Accounts {
  let users: Map<string, number> | undefined;
  let groups: Map<string, number> | undefined;
  return {
    uid(name) {
      users ??= readIds(passwd);
      return users.get(name) ?? numeric(name);
    },
    gid(name) {
      groups ??= readIds(group);
      return groups.get(name) ?? numeric(name);
    },
  };
}
