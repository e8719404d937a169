import { connect as netConnect, Socket } from 'net';

/** The filesystem socket path of a `unix:path=` or `unix:tmpdir=`-derived address. */
export function socketPath(address: string): string {
  for (const entry of address.split(';')) {
    const [transport, params = ''] = entry.split(/:(.*)/s);
    if (transport !== 'unix') continue;
    for (const kv of params.split(',')) {
      const [key, value] = kv.split('=');
      if (key === 'path') return decodeURIComponent(value);
      if (key === 'abstract') return '\0' + decodeURIComponent(value);
    }
  }
  throw new Error(`no unix socket in address ${address}`);
}

/**
 * A client that speaks the socket protocol by hand, so it can misbehave in
 * ways a real library never would.
 */
export class RawClient {
  private buffered = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(address: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(socketPath(address));
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Reads one CRLF-terminated line of the authentication conversation. */
  async readLine(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buffered.indexOf('\r\n');
      if (end >= 0) {
        const line = this.buffered.subarray(0, end).toString('latin1');
        this.buffered = this.buffered.subarray(end + 2);
        return line;
      }
      if (this.closed) throw new Error('connection closed while waiting for a line');
      await this.waitForData(deadline);
    }
  }

  /** Completes EXTERNAL authentication as the current uid and sends BEGIN. */
  async authenticate(): Promise<void> {
    const uid = String(process.getuid ? process.getuid() : 0);
    this.write(Buffer.from([0]));
    this.write(`AUTH EXTERNAL ${Buffer.from(uid, 'ascii').toString('hex')}\r\n`);
    const ok = await this.readLine();
    if (!ok.startsWith('OK ')) throw new Error(`unexpected auth reply: ${ok}`);
    this.write('BEGIN\r\n');
  }

  /**
   * Reads one whole message (framed by its fixed header's lengths); null
   * when the connection closes or nothing comes within the timeout.
   */
  async readMessage(timeoutMs = 5000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buffered.length >= 16) {
        const le = this.buffered[0] === 0x6c;
        const body = le ? this.buffered.readUInt32LE(4) : this.buffered.readUInt32BE(4);
        const fields = le ? this.buffered.readUInt32LE(12) : this.buffered.readUInt32BE(12);
        const total = ((16 + fields + 7) & ~7) + body;
        if (this.buffered.length >= total) {
          const msg = this.buffered.subarray(0, total);
          this.buffered = this.buffered.subarray(total);
          return msg;
        }
      }
      if (this.closed) return null;
      try {
        await this.waitForData(deadline);
      } catch {
        return null;
      }
    }
  }

  /** Resolves true if the peer closes the connection within the timeout. */
  async waitForClose(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() >= deadline) return false;
      await this.waitForData(deadline).catch(() => undefined);
    }
    return true;
  }

  private waitForData(deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for data')), Math.max(0, deadline - Date.now()));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}
