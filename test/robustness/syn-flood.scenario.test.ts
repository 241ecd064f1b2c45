/**
 * A spoofed SYN flood from outside to a published port (issue 11, item 2).
 * The container answers every SYN, so the flood fills conntrack with
 * answered but never completed (SYN_RECV, unassured) flows. With the
 * table full of them, new flows must still get in — a new connection to
 * the published port from outside, and a new outbound connection from a
 * container on another network — within a few seconds, not when the
 * flood's flows time out (60 s), and an established connection must keep
 * moving bytes through it all. The daemon's conntrack is made small
 * (4096 flows) so a bounded flood (≤ 60,000 SYNs, ≤ 10 s) fills it.
 * Needs root (CI is root).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNetns, requireRoot } from '../harness.js';
import { FIX, FloodLab, OUTSIDE_IP, UPLINK_IP } from './flood-lab.js';

const root = requireRoot('SYN flood scenario (uplink TAP, outside namespace, raw-socket flood)');
const CAPACITY = 4096;

/** The flood lab (small conntrack), a server outside on 7000, `c2` on network `other`, and whatever `more` adds; removed after the suite. */
function floodLab(tag: string, more: (lab: FloodLab) => void = () => undefined): FloodLab {
  const lab = new FloodLab(tag);
  beforeAll(async () => {
    await lab.start(CAPACITY);
    await lab.servePeer(lab.outside, 'tcp', 7000, 'outside');
    lab.d.ok('network', 'create', '--subnet', '10.211.2.0/24', 'other');
    lab.d.ok('run', '--name', 'c2', '--network', 'other');
    more(lab);
  }, 60_000);
  afterAll(async () => {
    await lab.cleanup();
    expect(listNetns().filter((n) => n.startsWith(lab.d.prefix))).toEqual([]);
  });
  return lab;
}

describe.runIf(root)('a SYN flood from outside', () => {
  const lab = floodLab('synf');

  it('admits new flows on every network within seconds, and established flows keep moving', async () => {
    // an established connection through the published port, echoing all along
    const stream = spawn('ip', ['netns', 'exec', lab.outside, 'python3', join(FIX, 'echo_stream.py'), UPLINK_IP, '8080', '14'], { stdio: ['ignore', 'pipe', 'pipe'] });
    lab.kids.push(stream);
    const progress: Array<[number, number]> = [];
    let streamOut = '';
    let streamErr = '';
    stream.stdout!.on('data', (b: Buffer) => {
      streamOut += b;
      for (const m of String(b).matchAll(/^(\d+\.\d+) (\d+)$/gm)) progress.push([Number(m[1]) * 1000, Number(m[2])]);
    });
    stream.stderr!.on('data', (b) => (streamErr += b));
    const streamDone = new Promise<number>((r) => stream.on('exit', (c) => r(c ?? -1)));
    const t = Date.now();
    while (progress.length < 3 && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 50));
    expect(progress.length, `the echo stream did not start: ${streamErr}`).toBeGreaterThanOrEqual(3);

    // the flood: fills the table with answered, never completed flows
    const floodStart = Date.now();
    const sent = await lab.flood(60_000, 10);
    const floodEnd = Date.now();
    expect(sent).toBeGreaterThan(2 * CAPACITY);
    const ct = await lab.conntrack();
    expect(ct.capacity).toBe(CAPACITY);
    // full (a few slots may have gone to the probes' flows): the case where
    // the old rule (evict unreplied flows only) refused every new flow
    expect(ct.flows).toBeGreaterThanOrEqual(CAPACITY - 64);

    // a new connection to the published port from outside: in within a few seconds
    const inbound = lab.inNs(lab.outside, 15_000, 'python3', join(FIX, 'tcp_echo_once.py'), UPLINK_IP, '8080', '4');
    expect(inbound.status, `new inbound connection: ${inbound.stderr}`).toBe(0);
    expect(inbound.stdout).toMatch(/^ok /);
    // a new outbound connection from a container on another network
    const outbound = lab.inNs(lab.ctr('c2'), 15_000, 'python3', join(FIX, 'peer_client.py'), 'tcp', OUTSIDE_IP, '7000');
    expect(outbound.status, `new outbound connection: ${outbound.stderr}`).toBe(0);
    expect(outbound.stdout.trim()).toMatch(/^outside 192\.0\.2\.2:\d+$/);
    const checked = Date.now();

    // the established connection lived through it and kept moving bytes
    const code = await streamDone;
    expect(code, `echo stream: ${streamErr}`).toBe(0);
    expect(streamOut).toMatch(/^done \d+$/m);
    const at = (ms: number) => progress.filter(([ts]) => ts <= ms).at(-1)?.[1] ?? 0;
    const before = at(floodStart);
    expect(before).toBeGreaterThan(0);
    expect(at(checked)).toBeGreaterThan(before);
    expect(progress.at(-1)![1]).toBeGreaterThan(at(checked));
    console.log(`flood: ${sent} SYNs in ${floodEnd - floodStart} ms; table ${ct.flows}/${ct.capacity}; new inbound ${inbound.stdout.trim()}; stream ${before} → ${progress.at(-1)![1]} bytes`);
  }, 60_000);
});

/**
 * The same from inside: a container SYN-floods a server outside from
 * spoofed addresses of its own subnet. The server answers every SYN; the
 * answers reach the router (so each flow is replied, never assured) and
 * die there unresolved. The flooding network fills conntrack, and its ARP
 * share, with flows of its own zone; a container on another network and
 * an outside client of a published port must still get new connections.
 */
describe.runIf(root)('a SYN flood from inside a container', () => {
  const lab = floodLab('syni', (l) => {
    l.d.ok('network', 'create', '--subnet', '10.211.3.0/24', 'flood');
    l.d.ok('run', '--name', 'flooder', '--network', 'flood');
  });
  const d = lab.d;

  it('fills only its own share: other networks and the outside still open new flows', async () => {
    const f = spawn('ip', ['netns', 'exec', lab.ctr('flooder'), 'python3', join(FIX, 'syn_flood.py'), OUTSIDE_IP, '7000', '60000', '10', '10.211.3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    lab.kids.push(f);
    let out = '';
    f.stdout!.on('data', (b) => (out += b));
    f.stderr!.on('data', (b) => (out += b));
    const code = await new Promise<number>((r) => f.on('exit', (c) => r(c ?? -1)));
    expect(code, out).toBe(0);
    const sent = Number(/sent (\d+)/.exec(out)?.[1] ?? 0);
    expect(sent).toBeGreaterThan(2 * CAPACITY);
    const ct = await lab.conntrack();
    expect(ct.flows).toBeGreaterThanOrEqual(CAPACITY - 64);
    // a new outbound connection from another network
    const outbound = lab.inNs(lab.ctr('c2'), 15_000, 'python3', join(FIX, 'peer_client.py'), 'tcp', OUTSIDE_IP, '7000');
    expect(outbound.status, `new outbound connection: ${outbound.stderr}`).toBe(0);
    expect(outbound.stdout.trim()).toMatch(/^outside 192\.0\.2\.2:\d+$/);
    // a new connection from outside to a published port on a third network
    const inbound = lab.inNs(lab.outside, 15_000, 'python3', join(FIX, 'tcp_echo_once.py'), UPLINK_IP, '8080', '4');
    expect(inbound.status, `new inbound connection: ${inbound.stderr}`).toBe(0);
    // the router's ARP for the other networks still works (the flood's answers went unresolved in its own share)
    expect(d.ping('c2', '10.211.2.1')).toBe(true);
    expect(d.ping('web', OUTSIDE_IP)).toBe(true);
  }, 60_000);
});
