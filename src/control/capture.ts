/**
 * Capture sessions: a sink that copies frames into a pcap stream (the
 * daemon's /capture response). Several sessions may watch one switch or
 * device; a SinkSet fans out to them and is detached when empty.
 */
import type http from 'node:http';
import type { Writable } from 'node:stream';
import type { FramePool } from '../dataplane/pool.js';
import type { FrameSink } from '../dataplane/port.js';
import type { CaptureQuery } from './api-schema.js';
import { reply } from './api-http.js';
import type { Container, Network, State } from './model.js';
import { pcapGlobalHeader, pcapRecord } from './pcap.js';
import type { Runtime } from './runtime.js';

export class CaptureSession implements FrameSink {
  captured = 0;
  done = false;
  constructor(
    private readonly pool: FramePool,
    private readonly out: Writable,
    private readonly limit: number, // 0 = unlimited
    private readonly onDone: (s: CaptureSession) => void,
  ) {
    out.write(pcapGlobalHeader());
  }

  frame(h: number): void {
    if (this.done) return;
    const p = this.pool;
    this.out.write(pcapRecord(p.bytes, p.offsets[h], p.lengths[h], performance.timeOrigin + performance.now()));
    this.captured++;
    if (this.limit > 0 && this.captured >= this.limit) this.finish();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.onDone(this);
    this.out.end();
  }
}

export class SinkSet implements FrameSink {
  readonly sessions: CaptureSession[] = [];
  frame(h: number): void {
    const s = this.sessions;
    for (let i = 0; i < s.length; i++) s[i].frame(h);
  }
  remove(s: CaptureSession): boolean {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    return this.sessions.length === 0;
  }
}

/** GET /capture?target=NET|CTR&count=N (checked by api-schema.ts CaptureQuery): a pcap stream of the network's or container's frames. */
export function serveCapture(q: CaptureQuery, req: http.IncomingMessage, res: http.ServerResponse, state: State, runtime: Runtime): void {
  const { target, count = 0 } = q;
  const fail = (status: number, message: string) => reply(res, status, { message });
  let net: Network | null = null;
  let ctr: Container | null = null;
  try {
    net = state.findNetwork(target);
  } catch {
    try {
      ctr = state.findContainer(target);
    } catch {
      return fail(404, `no such network or container: ${target}`);
    }
  }
  if (net && !runtime.networks.has(net.id)) return fail(400, `network ${net.name} (driver ${net.driver}) has no frames to capture`);
  if (ctr && runtime.endpointsOf(ctr.id).length === 0) return fail(400, `container ${ctr.name} has no interface to capture on`);
  res.writeHead(200, { 'content-type': 'application/vnd.tcpdump.pcap' });
  const session = net ? runtime.captureNetwork(net.id, res, count) : runtime.captureContainer(ctr!.id, res, count);
  req.on('close', () => session.finish());
  res.on('close', () => session.finish());
}
