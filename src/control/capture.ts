/**
 * Capture sessions: a sink that copies frames into a pcap stream (the
 * daemon's /capture response). Several sessions may watch one switch or
 * device; a SinkSet fans out to them and is detached when empty.
 */
import type { Writable } from 'node:stream';
import type { FramePool } from '../dataplane/pool.js';
import type { FrameSink } from '../dataplane/port.js';
import { pcapGlobalHeader, pcapRecord } from './pcap.js';

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
