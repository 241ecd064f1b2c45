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

export class Client {
  constructor(readonly socket: string) {}

  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
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
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = undefined;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = text;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const msg = (parsed as { message?: string })?.message ?? text ?? `HTTP ${res.statusCode}`;
              reject(new ApiError(msg, res.statusCode ?? 500));
            } else resolve(parsed as T);
          });
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
          reject(new Error(`cannot connect to the usernet daemon at ${this.socket}: is \`usernet daemon\` running?`));
        else if (e.code === 'EACCES') reject(new Error(`permission denied on ${this.socket} (the socket is root-only)`));
        else reject(e);
      });
      if (data) req.write(data);
      req.end();
    });
  }

  /** A streaming GET (capture): resolves with the response once headers arrive. */
  stream(path: string): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.socket, method: 'GET', path }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let msg = text;
            try {
              msg = JSON.parse(text).message ?? text;
            } catch {
              /* plain text */
            }
            reject(new ApiError(msg, res.statusCode ?? 500));
          });
        } else resolve(res);
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
          reject(new Error(`cannot connect to the usernet daemon at ${this.socket}: is \`usernet daemon\` running?`));
        else reject(e);
      });
      req.end();
    });
  }
}
