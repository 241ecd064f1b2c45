import { afterEach, describe, expect, it } from 'vitest';
import { A_GW, B1, B_GW, MAC, S, Testbed, UP_GW, UP_IP, arp, ip, parse, pkt } from './testbed.js';

let bed: Testbed;
afterEach(() => {
  bed.collect();
  for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
  expect(bed.pool.inUse).toBe(0);
});

const BCAST = 0xffffffffffff;
const fromB1 = (dst: number, proto: number, extra = {}) => pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst, proto, ...extra });
const fromUp = (src: number, dst: number, proto: number, extra = {}) => pkt({ dmac: MAC.UP, smac: MAC.UPGW, src, dst, proto, ...extra });

/** n ARP requests to A's gateway, each from another address of A's /16 */
function arpFlood(n: number): void {
  for (let i = 0; i < n; i++) {
    bed.send('A', arp(1, 0x06000000000 + i, ip('172.18.0.0') + 1000 + i, 0, A_GW, BCAST));
    if (i % 32 === 31) bed.run();
  }
  bed.run();
}

describe('Router: ARP shares and permanent neighbours', () => {
  it('an ARP flood on network A churns A’s quota only: B still learns, its container is answered at once', () => {
    bed = new Testbed({ arpCapacity: 64, arpIfaceQuota: 16 });
    bed.learn('UP', MAC.UPGW, UP_GW);
    expect(bed.router.addNeighbour(bed.ids.B, B1, MAC.B1)).toBe(true);
    arpFlood(500);
    const st = bed.router.stats();
    expect(st).toMatchObject({ arpDynamic: 17, arpCapacity: 64, arpStatic: 1, arpIfaceQuota: 16, arpQuotaEvicted: 500 - 16, arpTableFull: 0, arpCacheFull: 0 });
    expect(bed.router.arpIfaceStats(bed.ids.A)).toEqual({ dynamic: 16, static: 0, quota: 16, quotaHits: 500 - 16 });
    expect(bed.router.arpIfaceStats(bed.ids.B)).toEqual({ dynamic: 0, static: 1, quota: 16, quotaHits: 0 });
    // B1 → S and back: the reply goes straight to B1's MAC, no ARP needed
    bed.send('B', fromB1(S, 17, { sport: 5000, dport: 53 }));
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ UP: 1 });
    const q = parse(out.UP[0]);
    bed.send('UP', fromUp(S, UP_IP, 17, { sport: 53, dport: q.sport }));
    const back = bed.run();
    expect(Testbed.counts(back)).toEqual({ B: 1 });
    expect(parse(back.B[0])).toMatchObject({ dst: B1, dmac: MAC.B1, smac: MAC.B });
    // a learned neighbour on B still gets an entry (B's quota is its own)
    bed.send('B', arp(1, 0x0242ac130009, ip('172.19.0.9'), 0, B_GW, BCAST));
    expect(Testbed.counts(bed.run())).toEqual({ B: 1 });
    expect(bed.router.arpTable().some((r) => r.ip === ip('172.19.0.9') && r.state === 'reachable')).toBe(true);
  });

  it('a permanent neighbour ignores ARP claims (spoofing) and goes with removeNeighbour', () => {
    bed = new Testbed();
    bed.router.addNeighbour(bed.ids.B, B1, MAC.B1);
    bed.send('B', arp(2, 0x066666666666, B1, MAC.B, B_GW, MAC.B)); // "B1 is at 06:66:…"
    bed.run();
    expect(bed.router.stats().arpConflicts).toBe(1);
    expect(bed.router.arpTable()).toEqual([{ iface: bed.ids.B, ip: B1, mac: MAC.B1, state: 'permanent' }]);
    expect(bed.router.removeNeighbour(bed.ids.B, B1, 0x066666666666)).toBe(false);
    expect(bed.router.removeNeighbour(bed.ids.B, B1, MAC.B1)).toBe(true);
    expect(bed.router.arpTable()).toEqual([]);
  });

  it('addNeighbour sends the frames that waited for that address', () => {
    bed = new Testbed();
    bed.learn('UP', MAC.UPGW, UP_GW);
    // a frame from the host link's side is routed to B1, which is unknown: it waits (a request goes out)
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: ip('10.255.0.2'), dst: B1, proto: 17, sport: 1, dport: 2 }));
    const asked = bed.run();
    expect(Testbed.counts(asked)).toEqual({ B: 1 });
    expect(parse(asked.B[0]).type).toBe(0x0806);
    expect(bed.router.addNeighbour(bed.ids.B, B1, MAC.B1)).toBe(true);
    const sent = bed.collect();
    expect(Testbed.counts(sent)).toEqual({ B: 1 });
    expect(parse(sent.B[0])).toMatchObject({ dst: B1, dmac: MAC.B1 });
  });
});
