// The driver's introspection data, generated from the same table the driver
// dispatches on, so it never claims what is not answered.
import { INTERFACES } from './interfaces';

export function introspectXml(): string {
  const lines = [
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
    '"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
    '<node>',
  ];
  for (const iface of INTERFACES) {
    lines.push(`  <interface name="${iface.name}">`);
    for (const m of iface.methods) {
      lines.push(`    <method name="${m.name}">`);
      for (const [i, t] of m.in.entries()) lines.push(`      <arg direction="in" type="${t}"${m.inNames?.[i] ? ` name="${m.inNames[i]}"` : ''}/>`);
      for (const t of m.out) lines.push(`      <arg direction="out" type="${t}"/>`);
      lines.push('    </method>');
    }
    for (const s of iface.signals ?? []) {
      lines.push(`    <signal name="${s.name}">`);
      for (const t of s.args) lines.push(`      <arg type="${t}"/>`);
      lines.push('    </signal>');
    }
    for (const p of iface.properties ?? []) {
      lines.push(`    <property name="${p.name}" type="${p.type}" access="read">`);
      lines.push('      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>');
      lines.push('    </property>');
    }
    lines.push('  </interface>');
  }
  lines.push('  <node name="org/freedesktop/DBus"/>');
  lines.push('</node>');
  return lines.join('\n') + '\n';
}
