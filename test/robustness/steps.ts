/**
 * Steps of the element property tests (cold; test code only): a run is a
 * sequence of frames fed to inputs, drains, and port toggles; and the
 * checks every element test makes after a run.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { FramePool } from '../../src/dataplane/pool.js';
import type { Port } from '../../src/dataplane/port.js';
import { type Count, feed } from './rig.js';

/** A step: a frame for input `i`; or (frame null) i = −1: run the element and drain its outputs, i ≤ −2: toggle port −2 − i up/down. */
export type Step = { i: number; b: Uint8Array | null };

export function steps(inputs: fc.Arbitrary<Uint8Array>[], max = 60, toggles = 0): fc.Arbitrary<Step[]> {
  const one = fc.oneof(
    { arbitrary: fc.oneof(...inputs.map((a, i) => a.map((b): Step => ({ i, b })))), weight: 12 },
    { arbitrary: fc.constant<Step>({ i: -1, b: null }), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: Math.max(0, toggles - 1) }).map((k): Step => (toggles > 0 ? { i: -2 - k, b: null } : { i: -1, b: null })), weight: 1 },
  );
  return fc.array(one, { minLength: 1, maxLength: max, size: 'max' });
}

/** Frames the test fed to children that are not attached (never the element's): freed, and not counted as fed. */
export function freeDetached(pool: FramePool, kids: Port[][], attached: boolean[][], fed: number[]): void {
  kids.forEach((ks, net) =>
    ks.forEach((c, k) => {
      if (!attached[net][k]) for (let h = c.rx.pop(); h >= 0; h = c.rx.pop()) (pool.free(h), fed[net]--);
    }),
  );
}

export function expectCounts(before: Count, after: Count, fed: number, out: number, consumes = false): void {
  const rx = after.rxPackets - before.rxPackets;
  const tx = after.txPackets - before.txPackets;
  const drops = after.drops - before.drops;
  expect(rx).toBe(fed);
  expect(tx).toBe(out);
  // every frame taken in left (at least once: floods), was dropped, or was consumed where that is documented
  if (!consumes) expect(tx + drops).toBeGreaterThanOrEqual(rx);
}


/** Two parents (networks) with three children each, as the macvlan and ipvlan tests build them. */
export interface ParentWorld {
  pool: FramePool;
  parents: Port[];
  kids: Port[][];
  attached: boolean[][];
  fed: number[];
  out: number[];
  run(): void;
  attach(net: number, k: number): void;
  detach(net: number, k: number): void;
}

/**
 * Play the steps: a frame into a parent (input 3, 7) or a child; a run; or
 * a toggle k — ports 0..7 and the parents go down/up, the other children
 * are detached and attached again. Ends with a run.
 */
export function playParentSteps(ss: Step[], w: ParentWorld): void {
  const { pool, parents, kids, attached, fed, out } = w;
  for (const s of ss) {
    if (s.i <= -2) {
      const k = -2 - s.i;
      const net = (k >> 2) & 1;
      const j = k & 3;
      if (k < 8 || j === 3) {
        const port = j === 3 ? parents[net] : kids[net][j];
        port.up = !port.up;
      } else if (attached[net][j]) {
        // detach frees what waits in the child's rings: fed but never taken in, or sent but never drained
        fed[net] -= kids[net][j].rx.length;
        out[net] += kids[net][j].tx.length;
        w.detach(net, j);
        attached[net][j] = false;
      } else w.attach(net, j);
      continue;
    }
    if (s.b === null) {
      w.run();
      continue;
    }
    const net = s.i >> 2;
    const p = s.i & 3;
    const port = p === 3 ? parents[net] : kids[net][p];
    if (feed(pool, port.rx, s.b, port.id)) fed[net]++;
  }
  w.run();
}
