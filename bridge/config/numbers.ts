/**
 * C's strtol(s, &end, 0) as dbus uses it for file descriptors on the command
 * line and for <limit> values: leading white space, an optional sign, then a
 * hexadecimal (0x), octal (leading 0) or decimal number.
 *
 * Returns the value and how many characters were consumed, or undefined when
 * no digits were found.
 */
export function parseCLong(s: string): { value: number; end: number } | undefined {
  let i = 0;
  while (i < s.length && ' \t\n\v\f\r'.includes(s[i])) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  let base = 10;
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9A-Fa-f]/.test(s[i + 2] ?? '')) {
    base = 16;
    i += 2;
  } else if (s[i] === '0') {
    base = 8;
  }
  const digit = base === 16 ? /[0-9A-Fa-f]/ : base === 8 ? /[0-7]/ : /[0-9]/;
  const start = i;
  let value = 0;
  while (i < s.length && digit.test(s[i])) {
    value = value * base + parseInt(s[i], base);
    i++;
  }
  if (i === start) return undefined;
  return { value: negative ? -value : value, end: i };
}
