#!/bin/sh
# Compiles the dbus-java driver into $COMPAT_BUILD/dbus-java-driver.jar; its
# manifest points at Debian's jars, so the driver runs with "java -jar".
set -eu
jars="/usr/share/java/dbus.jar /usr/share/java/unix.jar /usr/share/java/debug-disable.jar"
for j in $jars; do [ -f "$j" ] || { echo "missing $j" >&2; exit 1; }; done
classes="$COMPAT_BUILD/dbus-java-classes"
rm -rf "$classes"
mkdir -p "$classes"
javac -Xlint:-options -nowarn -encoding UTF-8 -d "$classes" -cp "$(echo $jars | tr ' ' ':')" dbus-java/*.java
printf 'Main-Class: org.kdbusbridge.Driver\nClass-Path: %s\n' "$(echo $jars | sed 's|/usr|file:/usr|g')" > "$COMPAT_BUILD/dbus-java.manifest"
jar --create --file "$COMPAT_BUILD/dbus-java-driver.jar" --manifest "$COMPAT_BUILD/dbus-java.manifest" -C "$classes" .
