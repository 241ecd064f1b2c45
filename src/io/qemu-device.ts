/**
 * QEMU's network backends as Ports: usernet is the other end of a VM's NIC.
 *
 * QemuDgramDevice — `-netdev dgram,id=n0,local.type=unix,local.path=QPATH,
 * remote.type=unix,remote.path=UPATH`: unix datagram sockets, one frame per
 * datagram. The device binds UPATH (`localPath`) and sends every frame to
 * QPATH (`remotePath`); QEMU binds QPATH and sends to UPATH. Either side may
 * start first: frames sent while QEMU is not there are refused (txError
 * drops), never an exception. Everything else — batched pull/push
 * (recvmmsg/sendmmsg under the hood), readiness (watch), counters (rx =
 * frames the VM sent, tx = frames sent to it), `captureSink` — is
 * FdDevice's. A datagram too big for a slot is dropped by the addon
 * (stats().oversized). close() closes the socket and unlinks localPath.
 *
 * QemuStreamDevice — `-netdev stream,id=n0,addr.type=unix,addr.path=PATH`:
 * QEMU connects to a unix stream socket at PATH that the device listens on;
 * every frame is a 4-byte big-endian length and the frame, both ways (the
 * addon's length-framed stream fds: see src/io/native.ts). One VM at a
 * time: the first connection is taken; a connection that arrives while one
 * is active is accepted and closed at once (counted in `rejected`; QEMU
 * with `reconnect=N` retries, and gets in once the first has gone). While
 * connected, pull/push move frames on the connection through an inner
 * FdDevice (QemuStreamConnection: the same batching, counters and capture
 * as every fd-backed port). When the VM disconnects (readBatch reports the
 * end of the stream) the connection is closed (`disconnects`++), frames
 * queued to it are dropped (portDown) and, until the next connection, so is
 * every frame pushed to the port; frames the VM sent before it went stay in
 * port.rx. `connected` tells whether a VM is there.
 *
 * Readiness: watch(onReady) watches the listener (a connection waits: it is
 * accepted right away, from the watcher) and every accepted connection
 * (frames wait); each marks the device ready and calls onReady. Without
 * watch(), pull() accepts a waiting connection itself while none is active
 * (a later one then waits in the backlog until pull() sees the first gone).
 *
 * close() closes the connection and the listener, unlinks PATH and gives
 * back every frame held (queued output counted as portDown drops).
 */
import { DropReason } from '../dataplane/counters.js';
import type { Device } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { FrameSink, Port } from '../dataplane/port.js';
import { FdDevice } from './fd-device.js';
import type { NativeAddon } from './native.js';

export class QemuDgramDevice extends FdDevice {
  /** where the device is bound (QEMU's remote.path) */
  readonly localPath: string;
  /** where frames go (QEMU's local.path) */
  readonly remotePath: string;

  constructor(native: NativeAddon, pool: FramePool, port: Port, localPath: string, remotePath: string, batch = 64) {
    const s = native.openUnixDgram(localPath, remotePath);
    super(native, pool, port, s.fd, batch);
    this.localPath = localPath;
    this.remotePath = remotePath;
  }
}

/** One accepted stream connection: an FdDevice on the addon's length-framed fd. */
export class QemuStreamConnection extends FdDevice {
  constructor(native: NativeAddon, pool: FramePool, port: Port, fd: number, batch = 64) {
    super(native, pool, port, fd, batch);
  }
}

export class QemuStreamDevice implements Device {
  ready = false;
  batchFull = false;
  /** the listening socket's fd */
  readonly listenFd: number;
  /** connections taken (VMs that connected) */
  connections = 0;
  /** connections closed at once because a VM was already connected */
  rejected = 0;
  /** connections that ended (the VM went away, or a read failed) */
  disconnects = 0;
  /** accept failures (EMFILE, …) */
  acceptErrors = 0;
  private conn: QemuStreamConnection | null = null;
  private sink: FrameSink | null = null;
  private onReady: (() => void) | null = null;
  private listenWatcher = -1;
  private closed = false;

  constructor(
    private readonly native: NativeAddon,
    private readonly pool: FramePool,
    readonly port: Port,
    readonly path: string,
    private readonly batch = 64,
  ) {
    this.listenFd = native.listenUnixStream(path).fd;
  }

  /** whether a VM is connected */
  get connected(): boolean {
    return this.conn !== null;
  }

  get hasOutput(): boolean {
    return !this.port.tx.empty;
  }

  /** sees every frame read and written (null = off); carried over to every connection */
  get captureSink(): FrameSink | null {
    return this.sink;
  }
  set captureSink(s: FrameSink | null) {
    this.sink = s;
    if (this.conn !== null) this.conn.captureSink = s;
  }

  /** Start readiness watching: `onReady` is called (after marking ready) when a VM connects and whenever it sent frames. */
  watch(onReady: () => void): void {
    if (this.onReady !== null || this.closed) return;
    this.onReady = onReady;
    this.listenWatcher = this.native.pollStart(this.listenFd, () => {
      if (this.acceptWaiting()) {
        this.ready = true;
        onReady();
      }
    });
    if (this.conn !== null) this.watchConn(this.conn);
  }

  private watchConn(c: QemuStreamConnection): void {
    const onReady = this.onReady;
    if (onReady === null) return;
    c.watch(() => {
      this.ready = true;
      onReady();
    });
  }

  /** Accepts every waiting connection: the first becomes the connection if none is active, the others are closed. Returns whether one was taken. */
  private acceptWaiting(): boolean {
    let took = false;
    for (;;) {
      let s: { fd: number } | null;
      try {
        s = this.native.acceptUnixStream(this.listenFd);
      } catch {
        this.acceptErrors++;
        break;
      }
      if (s === null) break;
      if (this.conn !== null || this.closed) {
        this.native.close(s.fd);
        this.rejected++;
        continue;
      }
      const c = new QemuStreamConnection(this.native, this.pool, this.port, s.fd, this.batch);
      c.captureSink = this.sink;
      this.conn = c;
      this.connections++;
      this.watchConn(c);
      took = true;
    }
    return took;
  }

  pull(): number {
    let c = this.conn;
    if (c === null) {
      if (this.closed || !this.acceptWaiting()) {
        this.batchFull = false;
        return 0;
      }
      c = this.conn;
      if (c === null) return 0;
    }
    const errors = c.readErrors;
    const n = c.pull();
    this.batchFull = c.batchFull;
    if (c.readErrors !== errors) this.disconnect();
    return n;
  }

  push(): void {
    if (this.conn !== null) {
      this.conn.push();
      return;
    }
    this.dropOutput();
  }

  /** The VM is gone: close its connection; frames queued to it are dropped (portDown), frames it sent stay in port.rx. */
  private disconnect(): void {
    const c = this.conn;
    if (c === null) return;
    this.conn = null;
    this.disconnects++;
    this.batchFull = false;
    const rx = this.port.rx;
    const kept: number[] = [];
    for (let h = rx.pop(); h >= 0; h = rx.pop()) kept.push(h);
    c.close(); // frees its spare frames, drains port.tx as portDown, closes the fd
    for (const h of kept) rx.push(h);
  }

  private dropOutput(): void {
    const tx = this.port.tx;
    const c = this.port.counters;
    for (let h = tx.pop(); h >= 0; h = tx.pop()) {
      this.pool.free(h);
      c.drop(DropReason.portDown);
    }
  }

  /** Closes the connection and the listener (unlinking path) and gives back every frame held. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.listenWatcher >= 0) this.native.pollStop(this.listenWatcher);
    this.listenWatcher = -1;
    const c = this.conn;
    this.conn = null;
    if (c !== null) c.close();
    this.native.close(this.listenFd);
    this.dropOutput();
    for (let h = this.port.rx.pop(); h >= 0; h = this.port.rx.pop()) this.pool.free(h);
  }
}
