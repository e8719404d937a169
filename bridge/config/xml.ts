/**
 * A small, dependency-free XML reader for bus configuration files.
 *
 * It understands exactly what busconfig files use (prolog, DOCTYPE with an
 * optional internal subset, comments, processing instructions, CDATA, the
 * predefined and numeric entities) and rejects what is not well-formed, with
 * the line number of the offending construct so errors read `FILE:LINE: why`.
 */

export interface XmlAttribute {
  name: string;
  value: string;
}

export interface XmlText {
  kind: 'text';
  value: string;
  line: number;
}

export interface XmlElement {
  kind: 'element';
  name: string;
  attributes: XmlAttribute[];
  children: XmlNode[];
  line: number;
}

export type XmlNode = XmlElement | XmlText;

export interface XmlDocument {
  doctype?: string;
  root: XmlElement;
}

export class XmlSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'XmlSyntaxError';
  }
}

const PREDEFINED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
};

function isNameStart(c: string): boolean {
  return /[A-Za-z_:]/.test(c) || c.charCodeAt(0) >= 0x80;
}

function isNameChar(c: string): boolean {
  return /[A-Za-z0-9_:.\-]/.test(c) || c.charCodeAt(0) >= 0x80;
}

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

class Reader {
  private pos = 0;
  private readonly lineStarts: number[] = [0];

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '\n') this.lineStarts.push(i + 1);
    }
  }

  lineAt(pos: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  fail(reason: string, at: number = this.pos): never {
    throw new XmlSyntaxError(this.file, this.lineAt(Math.min(at, this.text.length)), reason);
  }

  get offset(): number {
    return this.pos;
  }

  eof(): boolean {
    return this.pos >= this.text.length;
  }

  peek(n = 0): string {
    return this.text.charAt(this.pos + n);
  }

  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  sliceFrom(start: number): string {
    return this.text.slice(start, this.pos);
  }

  advance(n: number): void {
    this.pos += n;
  }

  skipSpace(): boolean {
    const start = this.pos;
    while (isSpace(this.text[this.pos])) this.pos++;
    return this.pos > start;
  }

  expect(s: string, reason: string): void {
    if (!this.startsWith(s)) this.fail(reason);
    this.pos += s.length;
  }

  /** Consumes up to and including `terminator`, returning what came before it. */
  until(terminator: string, reason: string): string {
    const end = this.text.indexOf(terminator, this.pos);
    if (end < 0) this.fail(reason, this.text.length);
    const s = this.text.slice(this.pos, end);
    this.pos = end + terminator.length;
    return s;
  }

  name(): string {
    const start = this.pos;
    if (this.eof() || !isNameStart(this.peek())) this.fail('not well-formed (invalid token)');
    this.pos++;
    while (!this.eof() && isNameChar(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }
}

function decodeEntities(raw: string, reader: Reader, rawStart: number): string {
  if (!raw.includes('&')) return raw;
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const amp = raw.indexOf('&', i);
    if (amp < 0) {
      out += raw.slice(i);
      break;
    }
    out += raw.slice(i, amp);
    const semi = raw.indexOf(';', amp);
    if (semi < 0) reader.fail('not well-formed (invalid token)', rawStart + amp);
    const ref = raw.slice(amp + 1, semi);
    if (ref.startsWith('#')) {
      const hex = ref[1] === 'x';
      const digits = ref.slice(hex ? 2 : 1);
      const valid = hex ? /^[0-9A-Fa-f]+$/.test(digits) : /^[0-9]+$/.test(digits);
      const code = valid ? parseInt(digits, hex ? 16 : 10) : NaN;
      if (
        !valid ||
        code === 0 ||
        code > 0x10ffff ||
        (code >= 0xd800 && code <= 0xdfff) ||
        (code < 0x20 && code !== 0x9 && code !== 0xa && code !== 0xd)
      ) {
        reader.fail('reference to invalid character number', rawStart + amp);
      }
      out += String.fromCodePoint(code);
    } else if (Object.prototype.hasOwnProperty.call(PREDEFINED_ENTITIES, ref)) {
      out += PREDEFINED_ENTITIES[ref];
    } else {
      reader.fail(`undefined entity "&${ref};"`, rawStart + amp);
    }
    i = semi + 1;
  }
  return out;
}

/** Skips comments, processing instructions and white space between markup. */
function skipMisc(r: Reader): void {
  for (;;) {
    r.skipSpace();
    if (r.startsWith('<!--')) {
      skipComment(r);
    } else if (r.startsWith('<?')) {
      skipProcessingInstruction(r);
    } else {
      return;
    }
  }
}

function skipComment(r: Reader): void {
  const start = r.offset;
  r.advance(4);
  const body = r.until('-->', 'unclosed token');
  if (body.includes('--')) r.fail('not well-formed (invalid token)', start);
}

function skipProcessingInstruction(r: Reader): void {
  r.advance(2);
  const target = r.name();
  if (target.toLowerCase() === 'xml' && r.offset - target.length - 2 !== 0) {
    r.fail('XML or text declaration not at start of entity', r.offset - target.length - 2);
  }
  r.until('?>', 'unclosed token');
}

function parseDoctype(r: Reader): string {
  r.advance('<!DOCTYPE'.length);
  if (!r.skipSpace()) r.fail('syntax error');
  const name = r.name();
  // The external identifier and internal subset carry nothing a bus uses;
  // skip them while honouring quotes so a '>' inside a literal is not the end.
  let depth = 0;
  for (;;) {
    if (r.eof()) r.fail('unclosed token');
    const c = r.peek();
    if (c === '"' || c === "'") {
      r.advance(1);
      r.until(c, 'unclosed token');
      continue;
    }
    if (depth > 0 && r.startsWith('<!--')) {
      skipComment(r);
      continue;
    }
    r.advance(1);
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === '>' && depth === 0) return name;
  }
}

function parseAttributes(r: Reader, elementName: string): { attributes: XmlAttribute[]; selfClosing: boolean } {
  const attributes: XmlAttribute[] = [];
  for (;;) {
    const hadSpace = r.skipSpace();
    if (r.eof()) r.fail('unclosed token');
    if (r.startsWith('/>')) {
      r.advance(2);
      return { attributes, selfClosing: true };
    }
    if (r.peek() === '>') {
      r.advance(1);
      return { attributes, selfClosing: false };
    }
    if (!hadSpace) r.fail('not well-formed (invalid token)');
    const nameAt = r.offset;
    const name = r.name();
    r.skipSpace();
    r.expect('=', 'not well-formed (invalid token)');
    r.skipSpace();
    const quote = r.peek();
    if (quote !== '"' && quote !== "'") r.fail('not well-formed (invalid token)');
    r.advance(1);
    const valueStart = r.offset;
    const raw = r.until(quote, 'unclosed token');
    const lt = raw.indexOf('<');
    if (lt >= 0) r.fail('not well-formed (invalid token)', valueStart + lt);
    if (attributes.some((a) => a.name === name)) {
      r.fail(`duplicate attribute "${name}" on <${elementName}>`, nameAt);
    }
    // Attribute-value normalisation: literal white space becomes a space.
    const normalised = raw.replace(/[\t\n\r]/g, ' ');
    attributes.push({ name, value: decodeEntities(normalised, r, valueStart) });
  }
}

function parseElement(r: Reader): XmlElement {
  const line = r.lineAt(r.offset);
  r.advance(1); // '<'
  const name = r.name();
  const { attributes, selfClosing } = parseAttributes(r, name);
  const element: XmlElement = { kind: 'element', name, attributes, children: [], line };
  if (selfClosing) return element;

  for (;;) {
    if (r.eof()) r.fail(`element <${name}> opened at line ${line} is not closed`);
    if (r.startsWith('</')) {
      const closeAt = r.offset;
      r.advance(2);
      const closing = r.name();
      r.skipSpace();
      r.expect('>', 'not well-formed (invalid token)');
      if (closing !== name) {
        r.fail(`mismatched tag: </${closing}> closes <${name}> opened at line ${line}`, closeAt);
      }
      return element;
    }
    if (r.startsWith('<!--')) {
      skipComment(r);
    } else if (r.startsWith('<![CDATA[')) {
      const textLine = r.lineAt(r.offset);
      r.advance('<![CDATA['.length);
      const value = r.until(']]>', 'unclosed CDATA section');
      appendText(element, value, textLine);
    } else if (r.startsWith('<?')) {
      skipProcessingInstruction(r);
    } else if (r.startsWith('<!')) {
      r.fail('not well-formed (invalid token)');
    } else if (r.peek() === '<') {
      element.children.push(parseElement(r));
    } else {
      const start = r.offset;
      const textLine = r.lineAt(start);
      while (!r.eof() && r.peek() !== '<') r.advance(1);
      appendText(element, decodeEntities(r.sliceFrom(start), r, start), textLine);
    }
  }
}

function appendText(element: XmlElement, value: string, line: number): void {
  const last = element.children[element.children.length - 1];
  if (last && last.kind === 'text') {
    last.value += value;
  } else {
    element.children.push({ kind: 'text', value, line });
  }
}

/** Parses a whole document; throws XmlSyntaxError naming file and line. */
export function parseXml(text: string, file: string): XmlDocument {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const r = new Reader(text, file);
  let doctype: string | undefined;

  skipMisc(r);
  if (r.startsWith('<!DOCTYPE')) {
    doctype = parseDoctype(r);
    skipMisc(r);
  }
  if (r.eof()) r.fail('no element found');
  if (r.peek() !== '<') r.fail('syntax error');
  if (r.startsWith('<!')) r.fail('not well-formed (invalid token)');
  const root = parseElement(r);
  skipMisc(r);
  if (!r.eof()) r.fail('junk after document element');
  return { doctype, root };
}

/** All character data directly inside an element, in document order. */
export function textContent(element: XmlElement): string {
  let s = '';
  for (const child of element.children) if (child.kind === 'text') s += child.value;
  return s;
}
