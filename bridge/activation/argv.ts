/**
 * Splits an Exec= line into argv without a shell, with the quoting rules
 * dbus-daemon accepts: whitespace separates words; '...' is literal;
 * "..." allows \ before $ ` " \ and newline; a backslash outside quotes
 * takes the next character literally; # at the start of a word begins a
 * comment. Nothing is expanded.
 */
export class ExecLineError extends Error {}

export function splitExecLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const end = () => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\n') {
      end();
      i++;
    } else if (c === '#' && !inWord) {
      while (i < line.length && line[i] !== '\n') i++;
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new ExecLineError(`Unmatched quotation mark in command line: ${line}`);
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= line.length) throw new ExecLineError(`Unmatched quotation mark in command line: ${line}`);
        const d = line[i];
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < line.length && '$`"\\\n'.includes(line[i + 1])) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i += 2;
          continue;
        }
        word += d;
        i++;
      }
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new ExecLineError(`Text ended just after a '\\' character: ${line}`);
      if (line[i + 1] !== '\n') {
        word += line[i + 1];
        inWord = true;
      }
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  end();
  if (words.length === 0) throw new ExecLineError('Text was empty (or contained only whitespace)');
  return words;
}
