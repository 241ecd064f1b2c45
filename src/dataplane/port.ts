import { Counters } from './counters.js';
import { Ring } from './ring.js';

/**
 * Port — where frames enter and leave an element graph.
 *
 * `rx` holds frames that came IN from the outside of the port (a device
 * read them, or an internal element such as the gateway produced them) and
 * wait for the switch. `tx` holds frames the switch sends OUT through the
 * port. Counters are from the port's point of view: rx = received from the
 * device side, tx = sent to it.
 *
 * Port ids are small integers, unique per daemon, stored in pool.inPort[h].
 */
export class Port {
  readonly counters = new Counters();
  readonly rx: Ring;
  readonly tx: Ring;
  /** the port's MTU (payload bytes, as `ip link` shows); frames up to mtu + 18 pass */
  mtu = 1500;
  up = true;

  constructor(
    readonly id: number,
    readonly name: string,
    ringSize = 1024,
  ) {
    this.rx = new Ring(ringSize);
    this.tx = new Ring(ringSize);
  }
}

/** A capture hook: sees a frame (may copy it), never keeps or frees it. */
export interface FrameSink {
  frame(h: number): void;
}

/** Hands out port ids (0 is never used, so a zeroed inPort means "unset"). */
export class PortIds {
  private next = 1;
  private readonly freed: number[] = [];
  alloc(): number {
    const id = this.freed.pop() ?? this.next++;
    if (id > 0xffff) throw new Error('too many ports');
    return id;
  }
  release(id: number): void {
    this.freed.push(id);
  }
}
