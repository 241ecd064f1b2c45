/**
 * The daemon's API client: JSON over HTTP on a unix socket. Used by the CLI
 * and by tests; it never imports the dataplane.
 */
import http from 'node:http';

export const DEFAULT_SOCKET = '/run/usernet/usernet.sock';

export function socketPath(opt?: string): string {
  return opt || process.env.USERNET_SOCKET || DEFAULT_SOCKET;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** The daemon's error message from a JSON body ({message}) or plain text. */
function errorMessage(text: string, status: number | undefined): string {
  try {
    const m = (JSON.parse(text) as { message?: string })?.message;
    if (m) return m;
  } catch {
    /* plain text */
  }
  return text || `HTTP ${status}`;
}

function collect(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

export class Client {
  constructor(readonly socket: string) {}

  private connectError(e: NodeJS.ErrnoException): Error {
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
      return new Error(`cannot connect to the usernet daemon at ${this.socket}: is \`usernet daemon\` running?`);
    if (e.code === 'EACCES') return new Error(`permission denied on ${this.socket} (the socket is root-only)`);
    // reset before any answer: the daemon was stopping (it answers every request it took, so this one was not carried out)
    if (e.code === 'ECONNRESET' || e.message === 'socket hang up')
      return new Error(`the usernet daemon at ${this.socket} closed the connection without an answer: it is stopping or stopped`);
    return e;
  }

  /** Sends a request; resolves with the response once its headers arrive (status < 400), else rejects with the daemon's message. */
  private send(method: string, path: string, body?: unknown): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.socket,
          method,
          path,
          headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        },
        (res) => {
          const status = res.statusCode ?? 500;
          if (status < 400) return resolve(res);
          collect(res).then((text) => reject(new ApiError(errorMessage(text, status), status)), reject);
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.connectError(e)));
      req.end(data);
    });
  }

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await collect(await this.send(method, path, body));
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A streaming GET (capture): the response, once its headers arrive. */
  stream(path: string): Promise<http.IncomingMessage> {
    return this.send('GET', path);
  }
}
