/**
 * Steps of the element property tests (cold; test code only): a run is a
 * sequence of frames fed to inputs, drains, and port toggles; and the
 * checks every element test makes after a run.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { FramePool } from '../../src/dataplane/pool.js';
import type { Port } from '../../src/dataplane/port.js';
import type { Count } from './rig.js';

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

