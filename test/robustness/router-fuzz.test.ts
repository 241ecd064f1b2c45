/**
 * Robustness of the dataplane elements (the router with ARP, ICMP, NAT, DHCP and gateway DNS): sequences of valid, mutated and
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
import { A1, A_GW, B_GW, HOST_PEER, I1, MAC, S, Testbed, UP_GW, UP_IP } from '../../src/router/testbed.js';
import { GatewayDns } from '../../src/services/gateway-dns.js';
import { u16 } from '../../src/wire/bytes.js';
import { fcParams, icmpL4, ipFrame, mutate, netsIn, taggedPayload } from './frames.js';
import { drain, feed, netOf, replyTo, sizes, snap, tagOf } from './rig.js';
import { GWMACS, GWS, HOSTMACS, HOSTS, NAMES, allowed, dhcpFor, dnsResolver, frameFor, loopBack } from './router-rig.js';

import { expectCounts, steps } from './steps.js';

// ------------------------------------------------------------------ router (ARP, ICMP, NAT, DHCP inside)

describe('Router with conntrack NAT and DHCP services: networks A, B, internal I, uplink, host link', () => {
  it('no exception, pool balanced, counters add up, no bridge network reaches another, internal stays inside', async () => {
    /** how often a tag of network x left by iface y, over all runs (to see that the traffic did cross the router) */
    const crossed = new Map<string, number>();
    const dns = dnsResolver();
    let dnsAnswers = 0;
    await fc.assert(
      fc.asyncProperty(steps([...NAMES.map((_, n) => frameFor(n)), loopBack, loopBack], 50), sizes, async (ss, size) => {
        /** what left by UP and HOST, for the peers there to answer (with mutations) */
        const left: Array<{ y: number; b: Uint8Array }> = [];
        const bed = new Testbed({ poolSlots: Math.max(16, size.pool), ctCapacity: 32, arpCapacity: 16, arpQueueLen: size.ring });
        bed.router.setUdpService(bed.ids.A, 67, dhcpFor(bed, A_GW, MAC.A));
        bed.router.setUdpService(bed.ids.B, 67, dhcpFor(bed, B_GW, MAC.B));
        // DNS at the gateway address: answered asynchronously, queued with sendFrom
        const gdns = [0, 1].map((n) => {
          const g = new GatewayDns(bed.pool, { gatewayIp: GWS[n], gatewayMac: GWMACS[n], resolve: (q) => dns.handle(q, { networks: ['x'], internalOnly: false }, 'udp'), send: (h) => bed.router.sendFrom(bed.ids[NAMES[n]], h) });
          bed.router.setUdpService(bed.ids[NAMES[n]], 53, g);
          return g;
        });
        const settle = async (): Promise<void> => {
          for (let k = 0; k < 4; k++) await new Promise((r) => setImmediate(r));
        };
        NAMES.forEach((name, n) => bed.learn(name, HOSTMACS[n][0], n === 3 ? UP_GW : HOSTS[n][0])); // the uplink's gateway, the others' first host
        const before = snap(bed.router.counters);
        let fed = 0;
        let out = 0;
        const collect = (): void => {
          NAMES.forEach((name, y) => {
            const ring = bed.side[name] === 'switch' ? bed.ports[name].rx : bed.ports[name].tx;
            for (const b of drain(bed.pool, ring, `iface ${name}`, (t) => allowed(netOf(t), y))) {
              out++;
              if (y >= 3) left.push({ y, b });
              for (const t of netsIn(b)) crossed.set(`${NAMES[netOf(t)]}>${name}`, (crossed.get(`${NAMES[netOf(t)]}>${name}`) ?? 0) + 1);
            }
          });
        };
        for (const s of ss) {
          if (s.b === null) {
            bed.now += 250;
            await settle();
            bed.router.process(bed.now);
            bed.router.tick(bed.now);
            collect();
            continue;
          }
          let i = s.i;
          let b = s.b;
          if (i >= NAMES.length) {
            // a peer on UP/HOST answers something that left there (b holds the mutations' seed bytes)
            if (left.length === 0) continue;
            const l = left[u16(b.length >= 2 ? b : Uint8Array.of(0, 0), 0) % left.length];
            const r = replyTo(l.b, tagOf(l.y, 0));
            if (r === null) continue;
            i = l.y;
            b = b.length > 0 && b[0] < 64 ? mutate(r, [{ k: 'flip', pos: u16(b, 0), x: b[1] | 1 }]) : r;
          }
          const name = NAMES[i];
          const ring = bed.side[name] === 'switch' ? bed.ports[name].tx : bed.ports[name].rx;
          if (feed(bed.pool, ring, b, bed.ports[name].id)) fed++;
        }
        await settle();
        bed.router.process(bed.now);
        collect();
        // what waits for ARP resolution is sent or given up within a few seconds
        for (let i = 0; i < 10; i++) {
          bed.now += 1000;
          bed.router.tick(bed.now);
          bed.router.process(bed.now);
          collect();
        }
        expect(bed.pool.inUse).toBe(0);
        // the router answers and generates (ARP, ICMP, DHCP replies) and consumes (ARP replies): rx and tx as fed and seen
        expectCounts(before, bed.router.counters, fed, out, true);
        const per = Object.values(bed.ids).map((id) => bed.router.ifaceCounters(id));
        expect(per.reduce((a, c) => a + c.rxPackets, 0)).toBe(bed.router.counters.rxPackets);
        expect(per.reduce((a, c) => a + c.txPackets, 0)).toBe(bed.router.counters.txPackets);
        dnsAnswers += gdns[0].answers + gdns[1].answers;
        for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
        expect(bed.pool.inUse).toBe(0);
      }),
      fcParams(200),
    );
    expect(dnsAnswers).toBeGreaterThan(0);
    // masquerade out, replies back in, host link both ways, DHCP answers (client id echoed) and echo replies
    for (const k of ['A>UP', 'B>UP', 'UP>A', 'UP>B', 'HOST>B', 'A>HOST', 'HOST>A', 'HOST>I', 'A>A', 'B>B', 'I>I']) expect(crossed.get(k) ?? 0, k).toBeGreaterThan(0);
  });
});

// ------------------------------------------------------------------ regressions found by the properties above

describe('router: ICMP echo is tracked with its type, so an echo REQUEST never matches a flow in the reply direction', () => {
  // Found by the router property: echo flows were keyed by (src, dst, id) for type 8 and 0 alike, so the answering
  // side could send echo requests through the flow — from the Internet into a masqueraded container, and from an
  // internal network to the host link. Linux's conntrack keys echo by type (the reply tuple is type 0).
  it('an echo request from outside does not reach a container through the masquerade of its ping', () => {
    const bed = new Testbed();
    bed.learn('A', MAC.A1, A1);
    bed.learn('UP', MAC.UPGW, UP_GW);
    bed.send('A', ipFrame(MAC.A, MAC.A1, A1, S, icmpL4(8, 0, 0x77, taggedPayload(0))));
    const up = bed.run().UP;
    expect(up).toHaveLength(1);
    const id = u16(up[0], 38); // the NATed identifier
    bed.send('UP', ipFrame(MAC.UP, MAC.UPGW, S, UP_IP, icmpL4(8, 0, id, taggedPayload(3))));
    expect(bed.run().A).toHaveLength(0); // it was forwarded to A1 as an echo request
  });

  it('an internal network cannot send echo requests to the host link on the back of the host’s ping', () => {
    const bed = new Testbed();
    bed.learn('I', MAC.I1, I1);
    bed.learn('HOST', MAC.HOSTPEER, HOST_PEER);
    bed.send('HOST', ipFrame(MAC.HOST, MAC.HOSTPEER, HOST_PEER, I1, icmpL4(8, 0, 0x99, taggedPayload(4))));
    expect(bed.run().I).toHaveLength(1);
    bed.send('I', ipFrame(MAC.I, MAC.I1, I1, HOST_PEER, icmpL4(8, 0, 0x99, taggedPayload(2))));
    expect(bed.run().HOST).toHaveLength(0); // it used to leave the internal network
  });
});
