/**
 * Robustness of the dataplane elements (learning switch, macvlan, ipvlan, VLAN demux): sequences of valid, mutated and
 * random frames from several networks, through the real element code on a
 * shared FramePool. After every run: no exception; the pool is back to its
 * baseline once the outputs are drained (every frame transmitted or freed
 * exactly once: a double free throws in FramePool.free); the counters add
 * up (rx = frames fed, tx = frames that came out, and each frame taken in is
 * transmitted, dropped or, where the element documents it, consumed); and no
 * frame that entered on network A leaves by a port of network B (frames carry
 * their network and port as a payload tag, checked on every frame that
 * leaves).
 *
 * FC_SEED=<n> reproduces a run (fast-check prints the seed of a failure).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FramePool } from '../../src/dataplane/pool.js';
import { Port, PortIds } from '../../src/dataplane/port.js';
import { IpvlanSwitch, type IpvlanMode } from '../../src/switch/ipvlan.js';
import { LearningSwitch } from '../../src/switch/learning-switch.js';
import { MacvlanSwitch, type MacvlanMode } from '../../src/switch/macvlan.js';
import { ParentDemux } from '../../src/switch/parent-demux.js';
import { fcParams, mutate, mutation, netsIn, taggedPayload } from './frames.js';
import { drain, feed, netFrame, netOf, portOf, sizes, snap, tagOf } from './rig.js';

import { expectCounts, freeDetached, playParentSteps, steps } from './steps.js';

// ------------------------------------------------------------------ learning switch

describe('LearningSwitch: two networks on one pool, one of them isolated (icc=false)', () => {
  const macsOf = (net: number) => [1, 2, 3, 4, 5].map((k) => 0x024200000000 + net * 0x100 + k);
  const who = (net: number) => ({ macs: macsOf(net), ips: [0xac120002 + net * 0x10000, 0xac120003 + net * 0x10000] });

  it('no exception, pool balanced, counters add up, nothing crosses networks, no hairpin, isolation holds', () => {
    const inputs = [0, 1].flatMap((net) => [0, 1, 2, 3].map((p) => netFrame(who(net), tagOf(net, p))));
    fc.assert(
      fc.property(steps(inputs, 60, 16), fc.integer({ min: 0, max: 0xffffffff }), sizes, (ss, seed, size) => {
        const pool = new FramePool({ capacity: size.pool });
        const sws = [0, 1].map(() => new LearningSwitch(pool, { seed, tableSize: 8, agingMs: 50 }));
        const ports = [0, 1].map((net) => [0, 1, 2, 3].map((p) => new Port(1 + net * 10 + p, `n${net}p${p}`, size.ring)));
        let toggled = false;
        ports[0][3].mtu = 40; // oversize paths
        ports[1][2].mtu = 64;
        sws[1].isolated = true;
        for (const net of [0, 1]) for (const p of ports[net]) sws[net].attach(p);
        sws[1].trust(ports[1][0]);
        sws[0].addStatic(macsOf(0)[4], ports[0][1]);
        const before = sws.map((s) => snap(s.counters));
        const fed = [0, 0];
        const out = [0, 0];
        let now = 1000;
        const run = (): void => {
          now += 17;
          for (const net of [0, 1]) {
            sws[net].process(now);
            if (now % 3 === 0) sws[net].tick(now);
            ports[net].forEach((p, q) => {
              const allowed = (t: number): boolean =>
                netOf(t) === net && portOf(t) !== q && !(net === 1 && portOf(t) !== 0 && q !== 0); // untrusted ↔ untrusted never
              out[net] += drain(pool, p.tx, `network ${net} port ${q}`, allowed).length;
            });
          }
        };
        const attached = ports.map((ps) => ps.map(() => true));
        for (const s of ss) {
          if (s.i <= -2) {
            const k = -2 - s.i;
            const net = (k >> 2) & 1;
            const q = k & 3;
            const p = ports[net][q];
            toggled = true;
            if (k < 8) p.up = !p.up;
            else if (attached[net][q]) {
              // detach frees what waits in the port's rings: fed but never taken in, or sent but never drained
              fed[net] -= p.rx.length;
              out[net] += p.tx.length;
              sws[net].detach(p);
              attached[net][q] = false;
            } else {
              sws[net].attach(p);
              if (net === 1 && q === 0) sws[1].trust(p);
              attached[net][q] = true;
            }
          } else if (s.b === null) run();
          else {
            const net = s.i >> 2;
            if (feed(pool, ports[net][s.i & 3].rx, s.b, ports[net][s.i & 3].id)) fed[net]++;
          }
        }
        run();
        // frames fed to a detached port were never the switch's
        ports.forEach((ps, net) => ps.forEach((p, q) => {
          if (attached[net][q]) return;
          for (let h = p.rx.pop(); h >= 0; h = p.rx.pop()) (pool.free(h), fed[net]--);
        }));
        expect(pool.inUse).toBe(0);
        // a flood that finds every other port down is freed uncounted (documented)
        for (const net of [0, 1]) expectCounts(before[net], sws[net].counters, fed[net], out[net], toggled);
      }),
      fcParams(150),
    );
  });
});

// ------------------------------------------------------------------ macvlan

describe('MacvlanSwitch: two parents (networks), every mode', () => {
  const macsOf = (net: number) => [1, 2, 3].map((k) => 0x02aa00000000 + net * 0x100 + k);
  const who = (net: number) => ({ macs: [...macsOf(net), 0x02bb00000001], ips: [0x0a000001] });
  const PARENT = 15;

  it('no exception, pool balanced, counters add up, nothing crosses parents, child-to-child only in bridge mode', () => {
    const inputs = [0, 1].flatMap((net) => [0, 1, 2, PARENT].map((p) => netFrame(who(net), tagOf(net, p))));
    const modes = fc.constantFrom<MacvlanMode>('bridge', 'private', 'vepa', 'passthru');
    fc.assert(
      fc.property(steps(inputs, 60, 16), fc.tuple(modes, modes), sizes, (ss, mode, size) => {
        const pool = new FramePool({ capacity: size.pool });
        const parents = [0, 1].map((net) => new Port(100 + net, `eth${net}`, size.ring));
        const sws = [0, 1].map((net) => new MacvlanSwitch(pool, parents[net], { mode: mode[net], seed: 3 }));
        const kids = [0, 1].map((net) => [0, 1, 2].map((k) => new Port(110 + net * 10 + k, `m${net}c${k}`, size.ring)));
        const nk = mode.map((m) => (m === 'passthru' ? 1 : 3));
        for (const net of [0, 1]) for (let k = 0; k < nk[net]; k++) sws[net].attach(kids[net][k], macsOf(net)[k]);
        const attached = [0, 1].map((net) => [0, 1, 2].map((k) => k < nk[net]));
        const attach = (net: number, k: number): void => {
          if (mode[net] === 'passthru' && attached[net].some((x) => x)) return; // one endpoint only
          sws[net].attach(kids[net][k], macsOf(net)[k]);
          attached[net][k] = true;
        };
        const before = sws.map((s) => snap(s.counters));
        const fed = [0, 0];
        const out = [0, 0];
        const run = (): void => {
          for (const net of [0, 1]) {
            sws[net].process(0);
            out[net] += drain(pool, parents[net].tx, `parent ${net}`, (t) => netOf(t) === net && portOf(t) !== PARENT).length;
            kids[net].forEach((c, k) => {
              const allowed = (t: number): boolean => netOf(t) === net && (portOf(t) === PARENT || (mode[net] === 'bridge' && portOf(t) !== k));
              out[net] += drain(pool, c.tx, `network ${net} child ${k}`, allowed).length;
            });
          }
        };
        playParentSteps(ss, { pool, parents, kids, attached, fed, out, run, attach, detach: (net, j) => sws[net].detach(kids[net][j]) });
        freeDetached(pool, kids, attached, fed);
        expect(pool.inUse).toBe(0);
        // a flood that finds every other port down is freed uncounted (documented)
        for (const net of [0, 1]) expectCounts(before[net], sws[net].counters, fed[net], out[net]);
      }),
      fcParams(150),
    );
  });
});

// ------------------------------------------------------------------ ipvlan

describe('IpvlanSwitch: two parents (networks), every mode', () => {
  const PMAC = [0x02cc00000001, 0x02cc00000002];
  const ipsOf = (net: number) => [2, 3, 4].map((k) => 0x0a140000 + net * 0x100 + k);
  const GW = (net: number): number => 0x0a140000 + net * 0x100 + 1;
  const who = (net: number) => ({ macs: [PMAC[net], 0x02dd00000001 + net], ips: [...ipsOf(net), GW(net), 0x08080808] });
  const PARENT = 15;

  it('no exception, pool balanced, counters add up, nothing crosses parents, no hairpin', () => {
    const inputs = [0, 1].flatMap((net) => [0, 1, 2, PARENT].map((p) => netFrame(who(net), tagOf(net, p))));
    const modes = fc.constantFrom<IpvlanMode>('l2', 'l3', 'l3s');
    fc.assert(
      fc.property(steps(inputs, 60, 16), fc.tuple(modes, modes), sizes, (ss, mode, size) => {
        const pool = new FramePool({ capacity: size.pool });
        const parents = [0, 1].map((net) => new Port(200 + net, `eth${net}`, size.ring));
        let tracked = 0;
        const sws = [0, 1].map(
          (net) =>
            new IpvlanSwitch(pool, parents[net], {
              mode: mode[net],
              parentMac: PMAC[net],
              seed: 9,
              gatewayIp: net === 0 ? GW(net) : undefined,
              parentIp: net === 1 ? GW(net) : undefined,
              neighbours: 4,
              arpRetransMs: 10,
              track: () => void tracked++,
            }),
        );
        const kids = [0, 1].map((net) => [0, 1, 2].map((k) => new Port(210 + net * 10 + k, `i${net}c${k}`, size.ring)));
        for (const net of [0, 1]) kids[net].forEach((c, k) => sws[net].attach(c, ipsOf(net)[k]));
        const attached = [0, 1].map(() => [true, true, true]);
        const attach = (net: number, k: number): void => {
          sws[net].attach(kids[net][k], ipsOf(net)[k]);
          attached[net][k] = true;
        };
        const before = sws.map((s) => snap(s.counters));
        const fed = [0, 0];
        const out = [0, 0];
        let now = 0;
        const run = (): void => {
          now += 7;
          for (const net of [0, 1]) {
            sws[net].process(now);
            if (now % 5 === 0) sws[net].tick(now);
            // l3 answers the segment's ARP requests in place, back to the parent
            const back = mode[net] !== 'l2';
            out[net] += drain(pool, parents[net].tx, `parent ${net}`, (t) => netOf(t) === net && (back || portOf(t) !== PARENT)).length;
            kids[net].forEach((c, k) => {
              // a parent frame, or another child's, or an ARP request of the child itself answered back to it (l3)
              const allowed = (t: number): boolean => netOf(t) === net && (portOf(t) !== k || mode[net] !== 'l2');
              out[net] += drain(pool, c.tx, `network ${net} child ${k}`, allowed).length;
            });
          }
        };
        playParentSteps(ss, { pool, parents, kids, attached, fed, out, run, attach, detach: (net, j) => sws[net].detach(kids[net][j]) });
        freeDetached(pool, kids, attached, fed);
        expect(pool.inUse).toBe(0);
        // l3 answers ARP (tx without a new rx), asks for next hops (tx from nothing) and consumes replies to itself
        for (const net of [0, 1]) expectCounts(before[net], sws[net].counters, fed[net], out[net], mode[net] !== 'l2');
        if (mode[0] !== 'l3s' && mode[1] !== 'l3s') expect(tracked).toBe(0);
      }),
      fcParams(300),
    );
  });
});

// ------------------------------------------------------------------ parent demux

describe('ParentDemux: VLAN sub-ports of one parent', () => {
  const VIDS = [0, 100, 200] as const;
  const who = { macs: [0x020000000001, 0x020000000002], ips: [0x0a000001] };

  /** the VLAN a frame from the wire belongs to, from its final (possibly mutated) bytes; −1: none of ours */
  function vlanOf(b: Uint8Array): number {
    if (b.length < 14) return -1;
    if (b[12] !== 0x81 || b[13] !== 0x00) return 0;
    if (b.length < 18) return -1;
    return ((b[14] << 8) | b[15]) & 0xfff;
  }

  it('no exception, pool balanced, rx = tx + drops, a VLAN port sees only its VLAN, the wire gets the right tag', () => {
    // wire frames: tagged with one of our VIDs, another, VID 0 (priority), 0x88a8, untagged; tag = frame number
    const wire = fc
      .tuple(netFrame(who, 250), fc.constantFrom(-1, 0, 100, 200, 300, 4095, -2), fc.array(mutation, { maxLength: 2 }))
      .map(([f, vid, muts]) => {
        if (vid === -1 || f.length < 14) return { f, muts };
        const t = new Uint8Array(f.length + 4);
        t.set(f.subarray(0, 12));
        t.set(vid === -2 ? [0x88, 0xa8, 0, 100] : [0x81, 0, vid >> 8, vid & 0xff], 12);
        t.set(f.subarray(12), 16);
        return { f: t, muts };
      });
    const fromVlan = fc.tuple(fc.constantFrom(0, 1, 2), netFrame(who, 250)); // 250: not a frame number
    const step = fc.oneof(
      wire.map((w) => ({ k: 'wire' as const, ...w })),
      fromVlan.map(([v, f]) => ({ k: 'vlan' as const, v, f })),
      fc.constant({ k: 'run' as const }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60, size: 'max' }), sizes, (ss, size) => {
        const pool = new FramePool({ capacity: size.pool });
        const dev = new Port(300, 'eth0', size.ring);
        const dm = new ParentDemux(pool, dev, { portIds: new PortIds(), ringSize: size.ring });
        const ports = VIDS.map((v) => dm.vlanPort(v, `eth0.${v}`));
        /** per frame number: the VLAN it must come out on (wire → VLAN port; VLAN port → wire with that tag) */
        const want = new Map<number, number>();
        let n = 0;
        let fed = 0;
        let out = 0;
        const tag = (b: Uint8Array, id: number): Uint8Array => {
          const c = b.slice();
          const i = c.length - 18;
          if (i >= 0) c.set(taggedPayload(id & 0xff, 8), i); // the frame number, in the last bytes
          return c;
        };
        const before = snap(dm.counters);
        const run = (): void => {
          dm.process(0);
          ports.forEach((p, i) => {
            out += drain(pool, p.rx, `VLAN ${VIDS[i]}`, (t) => t === 250 || !want.has(t) || want.get(t) === VIDS[i]).length;
          });
          for (let h = dev.tx.pop(); h >= 0; h = dev.tx.pop()) {
            const b = pool.toBytes(h);
            pool.free(h);
            out++;
            for (const t of netsIn(b)) if (t !== 250 && want.has(t)) expect(vlanOf(b)).toBe(want.get(t));
          }
        };
        for (const s of ss) {
          if (s.k === 'run') {
            run();
            continue;
          }
          const id = n++ & 0xff;
          if (s.k === 'wire') {
            const b = mutate(tag(s.f, id), s.muts);
            want.set(id, vlanOf(b));
            if (feed(pool, dev.rx, b, dev.id)) fed++;
          } else {
            const b = tag(s.f, id);
            want.set(id, s.v === 0 ? vlanOf(b) : VIDS[s.v]); // VLAN 0's frames leave as they are
            if (feed(pool, ports[s.v].tx, b, ports[s.v].id)) fed++;
          }
        }
        run();
        expect(pool.inUse).toBe(0);
        const c = dm.counters;
        expect(c.rxPackets - before.rxPackets).toBe(fed);
        expect(c.txPackets - before.txPackets).toBe(out);
        expect(c.rxPackets - before.rxPackets).toBe(c.txPackets - before.txPackets + (c.drops - before.drops));
      }),
      fcParams(300),
    );
  });
});
