/**
 * Account lookups for starting a service as its User=: the ids and the
 * supplementary groups initgroups(3) would give, from the local files.
 */
import * as fs from 'fs';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  groups: number[];
}

function readLines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

export function lookupAccount(user: string): Account | undefined {
  for (const line of readLines('/etc/passwd')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] !== user) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    const groups = new Set<number>([gid]);
    for (const g of readLines('/etc/group')) {
      const gf = g.split(':');
      if (gf.length >= 4 && gf[3].split(',').includes(user)) groups.add(Number(gf[2]));
    }
    return { name: user, uid, gid, home: f[5], groups: [...groups] };
  }
  return undefined;
}
