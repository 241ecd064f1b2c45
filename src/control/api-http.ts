/**
 * The API's HTTP plumbing, total over its input: the request target parsed
 * (400 for a bad one, never a throw out of the handler), the body read with
 * a size limit (413 as soon as the declared length or the bytes read pass
 * MAX_BODY, without buffering the rest), JSON answers that survive a client
 * that hung up, and an error's status (internal errors are 500 and logged).
 */
import type http from 'node:http';
import { MAX_BODY } from './api-schema.js';
import { HttpError } from './http-error.js';

export interface Target {
  url: URL;
  /** the path's segments, percent-decoded */
  parts: string[];
}

/** At most `n` characters of untrusted text for a message, JSON-quoted. */
export function clip(s: string, n = 80): string {
  return JSON.stringify(s.length > n ? `${s.slice(0, n)}…` : s);
}

/** The request target (origin form `/a/b?q`, or absolute form `http://host/a/b`); HttpError 400 when it cannot be parsed. */
export function parseTarget(raw: string): Target {
  let url: URL;
  try {
    url = new URL(raw.startsWith('/') ? `http://usernet${raw}` : raw);
  } catch {
    throw new HttpError(400, `invalid request target ${clip(raw)}`);
  }
  if (url.protocol !== 'http:') throw new HttpError(400, `invalid request target ${clip(raw)}: expected /PATH or http://HOST/PATH`);
  const parts = url.pathname
    .split('/')
    .filter(Boolean)
    .map((seg) => {
      try {
        return decodeURIComponent(seg);
      } catch {
        throw new HttpError(400, `invalid request target ${clip(raw)}: bad percent-encoding in ${clip(seg)}`);
      }
    });
  return { url, parts };
}

/** 413 when the declared length alone is too much (checked before any byte is read). */
export function checkDeclaredLength(req: http.IncomingMessage): void {
  const len = req.headers['content-length'];
  if (len !== undefined && Number(len) > MAX_BODY) throw new HttpError(413, `request body too large: ${clip(len, 20)} bytes (at most ${MAX_BODY})`);
}

/**
 * The JSON body (undefined when empty). Stops reading past MAX_BODY (413;
 * reply() then closes the connection without reading the rest); 415 for a body that is not
 * application/json; 400 for bad JSON or a body cut short.
 */
export function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  checkDeclaredLength(req);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null, v?: unknown): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) reject(err);
      else resolve(v);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BODY) {
        req.pause();
        finish(new HttpError(413, `request body too large: more than ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('error', (e) => finish(new HttpError(400, `request body could not be read: ${e.message}`)));
    req.on('close', () => finish(new HttpError(400, 'the client closed the connection before the request body was complete')));
    req.on('end', () => {
      if (size === 0) return finish(null, undefined);
      const ct = req.headers['content-type'];
      if (ct !== undefined && !/^application\/json\s*(;|$)/i.test(ct)) return finish(new HttpError(415, `unsupported content-type ${clip(ct, 40)}: send application/json`));
      try {
        finish(null, JSON.parse(Buffer.concat(chunks, size).toString('utf8')));
      } catch (e) {
        finish(new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`));
      }
    });
  });
}

/** Errors a bug throws, not a bad request: answered 500 and logged with their stack. */
export function isInternalError(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError || !(e instanceof Error);
}

/** Control characters (a decoded `%0A` in a name, a JSON snippet) written as escapes: a message stays one line. */
export function oneLine(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** An error's status and one-line message. */
export function errorAnswer(e: unknown): { status: number; message: string } {
  if (e instanceof HttpError) return { status: e.status, message: oneLine(e.message) };
  if (isInternalError(e)) return { status: 500, message: oneLine(`internal error: ${e instanceof Error ? e.message : String(e)}`) };
  const message = oneLine((e as Error).message || 'request failed');
  return { status: /not found|no such/i.test(message) ? 404 : 400, message };
}

/** How long a refused body's connection stays open after the 413 (not read from), so the client reads the answer. */
export const LINGER_MS = 1000;

/**
 * A JSON answer; nothing when the client is gone or the answer has started
 * (a stream) — then the response is cut.
 *
 * A 413 never reads the rest of the body: the request stream is paused (it
 * buffers at most its high-water mark, then the socket stops being read),
 * the answer goes out, our side is half-closed (the client sees the answer,
 * then EOF), and the connection is dropped after LINGER_MS. Closing at once
 * would make a client that is still sending see a broken pipe instead of
 * the answer (nginx's lingering close, without the reading).
 */
export function reply(res: http.ServerResponse, status: number, obj: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const data = JSON.stringify(obj ?? null);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  if (status === 413) {
    const req = res.req;
    const sock = req.socket;
    req.pause();
    req.read(0); // marks the request as being consumed, so the server does not read it to the end after the answer
    res.once('finish', () => {
      sock.end();
      setTimeout(() => sock.destroy(), LINGER_MS).unref();
    });
  }
  res.end(data);
}
