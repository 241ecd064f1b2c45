/**
 * Engine — the breathe loop.
 *
 * One breath: read the clock once; pull frames from every device that is
 * ready (batched native reads into port.rx); run every element's process()
 * a few passes (switch → gateway → switch …) so that replies produced in
 * this breath leave in this breath; push every device's tx ring (batched
 * native writes); run timers (tick) when their period has passed.
 *
 * Readiness comes from libuv (the addon's uv_poll watchers): a watcher
 * marks its device ready and schedules one breath with setImmediate, so all
 * devices that became readable in one loop iteration share a breath. A
 * device whose read filled a whole batch stays ready and another breath is
 * scheduled; when nothing is ready the loop sleeps (no busy spin).
 *
 * Time is injected (`clock`), so tests can drive breaths with a fake clock.
 */
export interface Element {
  process(now: number): void;
  tick?(now: number): void;
}

export interface Device {
  /** set by the readiness watcher, cleared by the engine after a pull */
  ready: boolean;
  /** read up to a batch into port.rx; returns frames read */
  pull(): number;
  /** true when pull() filled its whole batch (more may be waiting) */
  readonly batchFull: boolean;
  /** write port.tx out */
  push(): void;
  /** whether port.tx holds frames */
  readonly hasOutput: boolean;
}

export class Engine {
  private devices: Device[] = [];
  private elements: Element[] = [];
  private scheduled = false;
  private lastTick = 0;
  private timer: NodeJS.Timeout | null = null;
  breaths = 0;
  /** passes of element processing per round */
  passes = 3;
  /** pull → process → push rounds per breath (see breatheOnce) */
  rounds = 4;
  /** period of tick() calls, ms */
  tickMs = 1000;
  /**
   * Adaptive busy-polling (like SO_BUSY_POLL): for this long after frames
   * moved, the loop keeps an immediate pending so libuv polls the devices
   * with a zero timeout instead of sleeping — no wake-up latency while
   * traffic flows, back to sleep once it has been quiet this long. 0 = off.
   */
  busyPollMs = 0;
  private hotUntil = 0;
  private spinning = false;
  private readonly spin = (): void => {
    if (this.clock() < this.hotUntil) setImmediate(this.spin);
    else this.spinning = false;
  };
  private readonly runBreath = (): void => {
    this.scheduled = false;
    this.breathe();
  };

  constructor(readonly clock: () => number = () => performance.now()) {}

  addDevice(d: Device): void {
    this.devices = [...this.devices, d];
  }
  removeDevice(d: Device): void {
    this.devices = this.devices.filter((x) => x !== d);
  }
  /** Elements run in the order added within a pass. */
  addElement(e: Element, first = false): void {
    this.elements = first ? [e, ...this.elements] : [...this.elements, e];
  }
  removeElement(e: Element): void {
    this.elements = this.elements.filter((x) => x !== e);
  }

  private inBreath = false;

  /**
   * Called by a readiness watcher: breathe now (the lowest latency: the
   * frame is forwarded from inside the libuv poll callback). Re-entry is
   * impossible from libuv, but a breath already running defers to wake().
   */
  readyNow(): void {
    if (this.inBreath) {
      this.wake();
      return;
    }
    this.breathe();
  }

  /** Schedule one breath soon (control code that queued frames, or more work pending). */
  wake(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.runBreath);
  }

  /** Starts the periodic timer that runs tick() and flushes queued output while idle. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.wake(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  breathe(): void {
    this.inBreath = true;
    try {
      this.breatheOnce();
    } finally {
      this.inBreath = false;
    }
  }

  private breatheOnce(): void {
    const now = this.clock();
    this.breaths++;
    const devices = this.devices;
    const elements = this.elements;
    let again = false;
    // A frame written to a TAP is usually answered at once by the stack
    // behind it (ARP reply, echo reply, TCP ACK): the answer is already
    // queued on the device we just wrote to. So a device we pushed to is
    // pulled again in the same breath (a few rounds at most) instead of
    // waiting for the next readiness wake-up.
    for (let round = 0; round < this.rounds; round++) {
      let got = 0;
      for (let i = 0; i < devices.length; i++) {
        const d = devices[i];
        if (!d.ready) continue;
        d.ready = false;
        got += d.pull();
        if (d.batchFull) {
          d.ready = true;
          again = true;
        }
      }
      if (got === 0 && round > 0) break;
      if (got > 0 && this.busyPollMs > 0) {
        this.hotUntil = now + this.busyPollMs;
        if (!this.spinning) {
          this.spinning = true;
          setImmediate(this.spin);
        }
      }
      for (let p = 0; p < this.passes; p++) {
        for (let i = 0; i < elements.length; i++) elements[i].process(now);
      }
      for (let i = 0; i < devices.length; i++) {
        const d = devices[i];
        if (d.hasOutput) {
          d.push();
          d.ready = true;
        }
      }
    }
    for (let i = 0; i < devices.length; i++) if (devices[i].hasOutput) again = true; // device pushed back (EAGAIN)
    if (now - this.lastTick >= this.tickMs) {
      this.lastTick = now;
      for (let i = 0; i < elements.length; i++) {
        const e = elements[i];
        if (e.tick) e.tick(now);
      }
    }
    if (again) this.wake();
  }
}
