/**
 * A raw HTTP/1.1 client for the daemon's unix socket: requests go out as
 * bytes exactly as given (bad targets included, which http.request would
 * refuse or rewrite), answers are parsed from the bytes that come back
 * (content-length or chunked), and every answer is logged for a check at
 * the end (no 5xx).
 */
import net from 'node:net';

export interface Answer {
  status: number;
  body: string;
  /** the parsed JSON body's message, when it has one */
  message?: string;
}

/** Parse one HTTP/1.1 answer from the bytes the daemon sent (status line, headers, content-length or chunked body); null until it is complete. */
export function parseAnswer(buf: Buffer): Answer | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? NaN);
  let body: string;
  if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
    // chunks up to the last (0-length) one; a stream (capture, conntrack) that has not ended yet is taken as far as it got
    const parts: Buffer[] = [];
    let at = end + 4;
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) break;
      const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
      if (size === 0 || buf.length < eol + 2 + size + 2) break;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    if (status >= 400 && buf.indexOf('\r\n0\r\n\r\n', end) < 0) return null; // an error answer is complete before it counts
    body = Buffer.concat(parts).toString('utf8');
  } else {
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + len) return null;
    body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
  }
  let message: string | undefined;
  try {
    message = (JSON.parse(body) as { message?: string })?.message;
  } catch {
    /* not JSON */
  }
  return { status, body, message };
}

export class RawClient {
  /** Every answer the daemon gave, to check afterwards that none was a 5xx. */
  readonly answers: { what: string; status: number; body: string }[] = [];

  constructor(readonly socket: string) {}

  /** Send raw bytes; resolve with the first answer (the connection is closed by us then). */
  raw(what: string, data: string | Buffer, timeoutMs = 10_000): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.socket);
      let got = Buffer.alloc(0);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`${what}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      let answered = false;
      const done = (a: Answer | null) => {
        if (answered) return;
        answered = true;
        clearTimeout(t);
        s.destroy();
        if (!a) return reject(new Error(`${what}: connection closed without an answer (${JSON.stringify(got.toString('latin1').slice(0, 200))})`));
        this.answers.push({ what, status: a.status, body: a.body });
        resolve(a);
      };
      s.on('data', (c) => {
        got = Buffer.concat([got, c]);
        const a = parseAnswer(got);
        if (a) done(a);
      });
      s.on('error', () => undefined);
      s.on('close', () => done(parseAnswer(got)));
      s.write(data);
    });
  }

  /** A request with a JSON (or given) body. */
  request(method: string, target: string, body?: unknown, contentType: string | null = 'application/json'): Promise<Answer> {
    const data = body === undefined ? Buffer.alloc(0) : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const head = [`${method} ${target} HTTP/1.1`, 'Host: usernet', 'Connection: close', `Content-Length: ${data.length}`];
    if (contentType !== null && data.length) head.push(`Content-Type: ${contentType}`);
    return this.raw(`${method} ${target} ${data.toString('utf8').slice(0, 120)}`, Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n'), data]));
  }

}
