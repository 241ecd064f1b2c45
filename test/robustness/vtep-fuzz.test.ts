/**
 * Robustness of the dataplane elements (the VXLAN tunnel endpoint): sequences of valid, mutated and
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
import { DropReason } from '../../src/dataplane/counters.js';
import { FramePool } from '../../src/dataplane/pool.js';
import { Port } from '../../src/dataplane/port.js';
import { KeyRing } from '../../src/overlay/seal.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { w32 } from '../../src/wire/bytes.js';
import { OUTER_IP_UDP_LEN } from '../../src/wire/vxlan.js';
import { fcParams, mutate, mutation, netsIn } from './frames.js';
import { drain, feed, netFrame, netOf, portOf, sizes, snap, tagOf } from './rig.js';


// ------------------------------------------------------------------ VTEP

describe('Vtep: two plain overlays and an encrypted one on one tunnel port', () => {
  const LOCAL = 0x0a000001;
  const PEERS = [0x0a000002, 0x0a000003];
  const VNIS = [0x00a0a0, 0x00b0b0, 0x00e0e0];
  const GW_IP = 0x0a140001;
  const GW_MAC = 0x02427e5c1a01;
  const macsOf = (n: number) => [1, 2, 3].map((k) => 0x0242ac140000 + n * 0x100 + k);
  const REMOTE = (n: number) => 0x0242ac150000 + n * 0x100; // a remote endpoint per network
  const who = (n: number) => ({ macs: [...macsOf(n), REMOTE(n), GW_MAC], ips: [GW_IP, 0x0a140010 + n, 0x0a140063] });
  const keys = new KeyRing();
  keys.set([{ id: 1, key: Buffer.alloc(32, 7), activeFrom: 0 }]);

  it('no exception, pool balanced, counters add up, a VNI never carries another network’s frames', () => {
    const delivered = [0, 0, 0];
    let loopedBack = 0;
    // per network: frames the switch sends out; datagrams from the underlay (inner frame of that network, or looped back from our own output)
    const outFrames = [0, 1, 2].map((n) => netFrame(who(n), tagOf(n, 0)));
    const datagram = fc.tuple(fc.constantFrom(0, 1, 2), fc.constantFrom(0x08, 0x0a, 0x00, 0x02), fc.array(mutation, { maxLength: 2 })).chain(([n, flags, muts]) =>
      netFrame(who(n), tagOf(n, 1)).map((inner) => {
        const d = new Uint8Array(8 + inner.length);
        d[0] = flags;
        d.set([VNIS[n] >>> 16, (VNIS[n] >>> 8) & 0xff, VNIS[n] & 0xff], 4);
        d.set(inner, 8);
        return mutate(d, muts);
      }),
    );
    const step = fc.oneof(
      { arbitrary: fc.tuple(fc.constantFrom(0, 1, 2), fc.nat()).chain(([n]) => outFrames[n].map((b) => ({ k: 'out' as const, n, b }))), weight: 4 },
      { arbitrary: datagram.map((b) => ({ k: 'in' as const, b })), weight: 3 },
      { arbitrary: fc.tuple(fc.nat(), fc.array(mutation, { maxLength: 3 })).map(([i, muts]) => ({ k: 'loop' as const, i, muts })), weight: 2 },
      { arbitrary: fc.constant({ k: 'run' as const }), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 50, size: 'max' }), sizes, (ss, size) => {
        const pool = new FramePool({ capacity: size.pool });
        const tunnel = new Port(1, 'vxlan0', size.ring);
        const vtep = new Vtep(pool, tunnel, { localIp: LOCAL, udpPort: 4789, seed: 5, agingMs: 500, maxVteps: 8, macCapacity: 16 });
        const ports = VNIS.map((vni, n) => {
          const port = new Port(2 + n, `ov${n}`, size.ring);
          const k = n === 2 ? keys : null;
          vtep.addNetwork({ vni, port, gatewayIp: GW_IP, gatewayMac: GW_MAC, keys: k, sendKeys: k });
          vtep.setFlood(vni, PEERS);
          vtep.setEndpoint(vni, REMOTE(n), 0x0a140010 + n, PEERS[n % 2]);
          return port;
        });
        /** our own outer packets, as datagrams (outer IPv4/UDP cut off) to loop back */
        const sent: Uint8Array[] = [];
        let now = 1000;
        const fed = { tunnel: 0, ports: [0, 0, 0] };
        const out = { tunnel: 0, ports: [0, 0, 0] };
        const before = { t: snap(tunnel.counters), p: ports.map((p) => snap(p.counters)) };
        const ringFull0 = ports.map((p) => p.counters.reasons[DropReason.ringFull]);
        const run = (): void => {
          now += 100;
          vtep.process(now);
          vtep.tick(now);
          for (let h = tunnel.tx.pop(); h >= 0; h = tunnel.tx.pop()) {
            const b = pool.toBytes(h);
            pool.free(h);
            out.tunnel++;
            const d = b.slice(OUTER_IP_UDP_LEN);
            const n = VNIS.indexOf((d[4] << 16) | (d[5] << 8) | d[6]);
            expect(n).toBeGreaterThanOrEqual(0);
            for (const t of netsIn(d)) if (netOf(t) !== n) expect.fail(`isolation: network ${netOf(t)}'s frame sent with VNI of network ${n}`);
            if (n === 2) expect(netsIn(d)).toEqual([]); // sealed: nothing readable
            sent.push(d);
          }
          ports.forEach((p, n) => {
            for (const b of drain(pool, p.rx, `overlay ${n}`, (t) => netOf(t) === n)) {
              out.ports[n]++;
              if (netsIn(b).length > 0) delivered[n]++;
              if (netsIn(b).some((t) => portOf(t) === 0)) loopedBack++;
            }
          });
        };
        for (const s of ss) {
          if (s.k === 'run') run();
          else if (s.k === 'out') {
            if (feed(pool, ports[s.n].tx, s.b, 99)) fed.ports[s.n]++;
          } else {
            const d = s.k === 'in' ? s.b : sent.length > 0 ? mutate(sent[s.i % sent.length], s.muts) : null;
            if (d === null || d.length === 0) continue;
            const h = pool.fromBytes(d);
            if (h < 0) continue; // pool empty: the device would not have read it
            w32(pool.bytes, pool.offsets[h] - 8, PEERS[d.length % 2]); // the sender, where TunnelDevice puts it
            if (tunnel.rx.push(h)) fed.tunnel++;
            else pool.free(h);
          }
        }
        run();
        expect(pool.inUse).toBe(0);
        // tunnel: rx = datagrams fed, tx = packets seen; each network port: tx = frames its switch sent, rx = frames it got
        expect(tunnel.counters.rxPackets - before.t.rxPackets).toBe(fed.tunnel);
        expect(tunnel.counters.txPackets - before.t.txPackets).toBe(out.tunnel);
        ports.forEach((p, n) => {
          expect(p.counters.txPackets - before.p[n].txPackets).toBe(fed.ports[n]);
          // rx counts a frame before its push onto the switch's ring: a full ring makes it a ringFull drop
          expect(p.counters.rxPackets - before.p[n].rxPackets).toBe(out.ports[n] + p.counters.reasons[DropReason.ringFull] - ringFull0[n]);
        });
        // every datagram is delivered or dropped (on the tunnel or, past the VNI, on its network); every frame sent out is encapsulated (floods: ≥ 1), answered or dropped
        const drops = ports.reduce((a, p, n) => a + p.counters.drops - before.p[n].drops, 0) + tunnel.counters.drops - before.t.drops;
        expect(out.tunnel + out.ports.reduce((a, x) => a + x, 0) + drops).toBeGreaterThanOrEqual(fed.tunnel + fed.ports.reduce((a, x) => a + x, 0));
      }),
      fcParams(200),
    );
    // decapsulation really happened on every network, the encrypted one through our own sealed output looped back
    expect(delivered.every((d) => d > 0)).toBe(true);
    expect(loopedBack).toBeGreaterThan(0);
  });
});
