import { describe, expect, it } from 'vitest';
import { Counters } from '../dataplane/counters.js';
import { statsTable, type StatsReport } from './stats.js';

const c = (rx: number) => {
  const k = new Counters();
  k.rxPackets = rx;
  return k.snapshot();
};

/** A port that took one 40 KB super-frame (28 segments) and sent 3 ordinary frames. */
const segs = () => {
  const k = new Counters();
  k.rxPackets = 1;
  k.rxBytes = 40054;
  k.rxSegments = 28;
  k.txPackets = 3;
  k.txBytes = 180;
  k.txSegments = 3;
  return k.snapshot();
};

function report(): StatsReport {
  return {
    pool: { capacity: 32768, inUse: 3, exhausted: 0 },
    breaths: 10,
    router: c(5),
    routerEvents: {
      icmpErrorsSent: 4, icmpRateLimited: 17, rstSent: 0, arpRequests: 9, arpCacheFull: 0, arpUnresolved: 2, // prettier-ignore
      arpDynamic: 128, arpCapacity: 1024, arpStatic: 3, arpStaticCapacity: 1024, arpIfaceQuota: 128, // prettier-ignore
      arpTableFull: 0, arpQuotaEvicted: 1872, arpStaticFull: 0, arpConflicts: 1, fragmentsMade: 0, gsoSegmented: 2, segmentsMade: 61, // prettier-ignore
      conntrackFull: 6, natPortsExhausted: 7, udpDelivered: 0, udpSent: 0, udpServiceErrors: 0, // prettier-ignore
    },
    conntrack: { flows: 12, capacity: 131072, counters: { inserted: 20, evicted: 3, someNewCounter: 42 } },
    links: [{ name: 'uplink up0', ...c(1) }],
    networks: [
      {
        name: 'lan',
        macEntries: 70,
        mac: { entries: 70, capacity: 8192, static: 3, dynamic: 67, staticRoom: 4000, portLimit: 1024, macTableFull: 0, portLimitHits: 9000, macSpoof: 12 },
        arp: { dynamic: 128, quota: 128, static: 3, quotaHits: 1872 },
        switch: c(9000),
        gateway: c(2),
        ports: [{ name: 'a:eth0', ...c(9000) }, { name: 'b:eth0', ...segs() }],
      },
      { name: 'mv', macEntries: 2, mac: null, arp: null, switch: c(0), gateway: c(0), ports: [] },
    ],
  };
}

describe('statsTable', () => {
  it('shows how full every table is and what a full one refused, in aligned columns', () => {
    const out = statsTable(report());
    const lines = out.split('\n');
    const head = lines.findIndex((l) => l.startsWith('NETWORK') && l.includes('MACS'));
    expect(head).toBeGreaterThan(0);
    const cells = (l: string) => l.trim().split(/\s{3,}/);
    const hdr = cells(lines[head]);
    const lan = Object.fromEntries(cells(lines[head + 1]).map((v, i) => [hdr[i], v]));
    expect(lan).toEqual({
      NETWORK: 'lan', MACS: '70/8192', STATIC: '3', LEARNED: '67', 'PORT LIMIT': '1024', 'MAC FULL': '0', // prettier-ignore
      'LIMIT HITS': '9000', 'SPOOF DROPS': '12', 'ARP LEARNED': '128/128', 'ARP PERM': '3', 'ARP QUOTA HITS': '1872', // prettier-ignore
    });
    expect(cells(lines[head + 2])).toEqual(['mv', '2', '-', '-', '-', '-', '-', '-', '-', '-', '-']);
    // columns line up: every column starts at the same offset in the header and the rows
    for (const h of hdr.slice(1)) {
      const at = lines[head].indexOf(h);
      expect(lines[head + 1][at - 1]).toBe(' ');
      expect(lines[head + 1][at]).not.toBe(' ');
    }
    expect(out).toContain('arp: 128/1024 learned (quota 128 per network), 3/1024 permanent; table full 0, quota evictions 1872');
    expect(out).toContain('icmp errors 4 sent, 17 rate-limited; nat ports exhausted 7; conntrack full 6');
    // every conntrack counter, including ones this file does not know
    expect(out).toContain('conntrack: 12/131072 flows; inserted=20 evicted=3 someNewCounter=42');
    expect(lines.every((l) => l.length < 200)).toBe(true);
  });
});

describe('statsTable: segments', () => {
  it('shows RX SEGS and TX SEGS beside the packet and byte columns (a super-frame: 1 packet, its segments)', () => {
    const lines = statsTable(report()).split('\n');
    const cells = (l: string) => l.trim().split(/\s{3,}/);
    const hdr = cells(lines[0]);
    expect(hdr).toEqual(['NETWORK', 'PORT', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'RX SEGS', 'TX SEGS', 'DROPS', 'DROP REASONS']);
    const b = lines.find((l) => l.includes('b:eth0'))!;
    expect(Object.fromEntries(cells(b).map((v, i) => [hdr[i], v]))).toMatchObject({ 'RX PKTS': '1', 'RX BYTES': '40054', 'TX PKTS': '3', 'RX SEGS': '28', 'TX SEGS': '3', DROPS: '0' });
    expect(statsTable(report())).toContain('fragments 0; super-frames segmented 2 (61 segments)');
  });

  it('the snapshot carries the segment counters (the JSON report)', () => {
    expect(segs()).toMatchObject({ rxPackets: 1, rxSegments: 28, txSegments: 3 });
    const k = new Counters();
    k.rxSegments = 5;
    k.reset();
    expect(k.snapshot().rxSegments).toBe(0);
  });
});
