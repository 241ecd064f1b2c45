/**
 * GET /conntrack — the tracked flows, streamed.
 *
 *   GET /conntrack               text/plain, one `conntrack -L` line a flow
 *   GET /conntrack?format=json   application/json: an array, one flow
 *                                object (FlowInfo) a line
 *   (another format: 400, before anything is sent)
 *
 * A full table is 131072 flows (tens of MB of text). The listing is never
 * built whole: flow ids are walked in slices of SLICE, each slice becomes
 * one chunk written to the response, and the next slice waits for 'drain'
 * when the socket is behind (backpressure), or for the next turn of the
 * event loop otherwise, so the dataplane keeps breathing between slices and
 * the daemon's memory stays flat however many listings run at once. Flows
 * made or removed while the listing runs may or may not show (as
 * /proc/net/nf_conntrack); each line is one consistent flow. A client that
 * goes away stops the walk.
 */
import type http from 'node:http';
import type { Conntrack } from '../nat/conntrack.js';
import { flowInfo, formatFlow } from '../nat/conntrack-format.js';
import { HttpError } from './http-error.js';

/** flow ids per chunk */
const SLICE = 1024;

export async function serveConntrack(url: URL, res: http.ServerResponse, ct: Conntrack, clock: () => number): Promise<void> {
  const format = url.searchParams.get('format') ?? 'text';
  if (format !== 'text' && format !== 'json') throw new HttpError(400, `invalid format ${JSON.stringify(format.slice(0, 40))}: expected text or json`);
  const json = format === 'json';
  res.writeHead(200, { 'content-type': json ? 'application/json' : 'text/plain; charset=utf-8' });
  let gone = false;
  res.once('close', () => (gone = true));
  res.on('error', () => (gone = true)); // a write racing the client's going away
  let first = true;
  if (json) res.write('[');
  for (let from = 0; from < ct.capacity && !gone && !res.destroyed; from += SLICE) {
    const now = clock();
    const end = Math.min(ct.capacity, from + SLICE);
    let chunk = '';
    for (let f = from; f < end; f++) {
      if (!ct.inUse(f)) continue;
      const fi = flowInfo(ct, f, now);
      if (json) {
        chunk += (first ? '\n' : ',\n') + JSON.stringify(fi);
        first = false;
      } else chunk += formatFlow(fi) + '\n';
    }
    if (gone || res.destroyed) return;
    if (chunk && !res.write(chunk)) await drained(res);
    else await new Promise<void>((r) => setImmediate(r));
  }
  if (gone || res.destroyed) return;
  res.end(json ? (first ? ']\n' : '\n]\n') : undefined);
}

/** Resolves on 'drain', or when the response closes (the client went away). */
function drained(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
