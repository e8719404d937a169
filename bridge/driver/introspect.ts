// The driver's introspection data, generated from the table the driver
// dispatches on, so it never claims what is not answered.
import { BUS_PATH } from './codec';
import { INTERFACES, splitSignature } from './interfaces';

/** Introspection of `path` on the bus driver (the canonical path when omitted). */
export function introspectXml(path: string = BUS_PATH): string {
  const canonical = path === BUS_PATH;
  const lines = [
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
    '"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
    '<node>',
  ];
  for (const iface of INTERFACES) {
    if (!canonical && !iface.anyPath) continue;
    lines.push(`  <interface name="${iface.name}">`);
    for (const m of iface.methods) {
      lines.push(`    <method name="${m.name}">`);
      for (const t of splitSignature(m.in)) lines.push(`      <arg direction="in" type="${t}"/>`);
      for (const t of splitSignature(m.out)) lines.push(`      <arg direction="out" type="${t}"/>`);
      lines.push('    </method>');
    }
    for (const p of iface.properties ?? []) {
      lines.push(`    <property name="${p.name}" type="${p.type}" access="read">`);
      lines.push('      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>');
      lines.push('    </property>');
    }
    if (iface.signals) lines.push(iface.signals);
    lines.push('  </interface>');
  }
  // The driver's path is discoverable from its ancestors.
  const child: Record<string, string> = { '/': 'org/freedesktop/DBus', '/org': 'freedesktop/DBus', '/org/freedesktop': 'DBus' };
  if (child[path]) lines.push(`  <node name="${child[path]}"/>`);
  lines.push('</node>');
  return lines.join('\n') + '\n';
}
