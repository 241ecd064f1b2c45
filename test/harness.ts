/** Scenario-test harness: the lab (src/lab/lab.ts) plus the loud root check. */
import { isRoot } from '../src/lab/lab.js';

export { CLI, DaemonLab as DaemonUnderTest, isRoot, listNetns, ROOT, uniquePrefix } from '../src/lab/lab.js';

/** Say loudly what a non-root run skips. */
export function requireRoot(what: string): boolean {
  if (!isRoot) console.warn(`\n*** SKIPPED (needs root): ${what} — run the suite as root (CI does) ***\n`);
  return isRoot;
}
