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
 * marks its device ready and breathes at once (readyNow). A device whose
 * read filled a whole batch stays ready and another breath is scheduled.
 *
 * Polling (NAPI-like, on by default): a wake-up from sleep costs more than
 * the breath it starts (scheduler, cold caches), so while frames come
 * close together the loop keeps polling for a short window after a breath
 * instead of sleeping: an immediate stays pending, so libuv polls every fd
 * with a zero timeout and the watchers fire as soon as a frame is there.
 * The window adapts (see keepPolling): frames that woke the loop less than
 * pollMaxMs after the previous ones open it (1.5× that gap), frames caught
 * while polling double it (up to pollMaxMs: a steady flow keeps the loop
 * polling), a window that ends empty halves it (and closes below
 * pollMinMs). Sparse traffic (gaps > pollMaxMs) and an idle daemon never
 * poll: the loop sleeps on the watchers. busyPollMs > 0 replaces the
 * adaptive window with a fixed one after every breath that read frames;
 * adaptivePoll = false turns polling off.
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
  /** Adaptive polling after traffic (see above); false: sleep right after every breath. */
  adaptivePoll = true;
  /** shortest adaptive polling window, ms (the first one; an empty window halving below it closes polling) */
  pollMinMs = 0.02;
  /**
   * longest adaptive polling window, ms (a flow whose frames keep coming is
   * polled for this long after each). Kept short on purpose: the other end
   * of the traffic is usually a container on the same few cores, and a loop
   * that spins holds the core its answer needs (bench/latency.ts: a 0.25 ms
   * cap cost ~15% of flood-ping rate on 2 vCPUs; 0.05 ms is within noise).
   */
  pollMaxMs = 0.05;
  /**
   * Fixed polling window (like SO_BUSY_POLL), ms: for this long after frames
   * moved the loop polls instead of sleeping. > 0 overrides the adaptive
   * window (`--busy-poll MS`); 0 = adaptive (or off, see adaptivePoll).
   */
  busyPollMs = 0;
  /** the adaptive window now, ms (0: none yet, or it shrank away) */
  pollWindowMs = 0;
  private lastFrameAt = -Infinity;
  /** breaths that read frames caught while polling (the loop was not asleep) */
  polledHits = 0;
  /** polling windows that ended without a frame */
  polledEmpty = 0;
  private pollUntil = 0;
  private polling = false;
  /** an immediate for spin is pending (at most one at a time) */
  private spinQueued = false;
  private readonly spin = (): void => {
    this.spinQueued = false;
    if (!this.polling) return;
    if (this.clock() < this.pollUntil) {
      this.spinQueued = true;
      setImmediate(this.spin);
      return;
    }
    this.polling = false;
    if (this.busyPollMs > 0) return;
    // the window ran out empty: a shorter one next time, none below pollMinMs
    this.polledEmpty++;
    this.pollWindowMs = this.pollWindowMs / 2 < this.pollMinMs ? 0 : this.pollWindowMs / 2;
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

  /** Stops the periodic timer and any polling. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.polling = false;
  }

  breathe(): void {
    this.inBreath = true;
    try {
      this.breatheOnce();
    } finally {
      this.inBreath = false;
    }
  }

  /**
   * Frames were read at `now`: decide how long to poll before sleeping.
   * Caught while polling: the window paid off, double it. Woke from sleep
   * after a quiet spell no longer than pollMaxMs: a window would have
   * caught these frames, so open one 1.5× that spell. Woke after a longer
   * spell (sparse traffic, e.g. a ping every few ms): polling would only
   * burn CPU (and on a busy machine take it from the very process about to
   * answer), so sleep as before.
   */
  private keepPolling(now: number): void {
    const quiet = now - this.lastFrameAt;
    this.lastFrameAt = now;
    let window = this.busyPollMs;
    if (window <= 0) {
      if (!this.adaptivePoll || this.pollMaxMs <= 0) return;
      let w: number;
      if (this.polling) {
        this.polledHits++;
        w = this.pollWindowMs * 2;
      } else if (quiet <= this.pollMaxMs) {
        w = Math.max(this.pollWindowMs, quiet * 1.5); // the window that would have caught them, with a margin
      } else {
        return;
      }
      window = this.pollWindowMs = Math.min(this.pollMaxMs, Math.max(this.pollMinMs, w));
    }
    this.pollUntil = now + window;
    this.polling = true;
    if (!this.spinQueued) {
      this.spinQueued = true;
      setImmediate(this.spin);
    }
  }

  /** Whether the loop is polling (an immediate pending) rather than sleeping on the watchers. */
  get isPolling(): boolean {
    return this.polling;
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
      if (got > 0 && round === 0) this.keepPolling(now);
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
