// Bus name syntax per the D-Bus specification.
const ELEMENT = /^[A-Za-z_-][A-Za-z0-9_-]*$/;
const UNIQUE_ELEMENT = /^[A-Za-z0-9_-]+$/;

export function isValidBusName(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  const unique = name.startsWith(':');
  const parts = (unique ? name.slice(1) : name).split('.');
  if (parts.length < 2) return false;
  return parts.every((p) => (unique ? UNIQUE_ELEMENT : ELEMENT).test(p));
}
