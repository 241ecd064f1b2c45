/**
 * Robustness of the services that parse what containers send, answered
 * inside the dataplane: the DHCP server, the embedded DNS resolver and the
 * gateway's DNS — random, mutated and valid messages; never an exception,
 * well-formed answers only, pool and counters balanced.
 *
 * FC_SEED=<n> reproduces a run (fast-check prints the seed of a failure).
 */
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { State } from '../../src/control/model.js';
import { FramePool } from '../../src/dataplane/pool.js';
import { DhcpServer, type DhcpConfig } from '../../src/services/dhcp.js';
import { DnsResolver, DnsTable } from '../../src/services/dns.js';
import { GatewayDns } from '../../src/services/gateway-dns.js';
import { u16, u32 } from '../../src/wire/bytes.js';
import { type DhcpRepr as DhcpReprT } from '../../src/wire/dhcp.js';
import { FRAME_FIELDS, anyOf, dhcpFrame, fcParams, ipFrame, u16a, udpL4 } from './frames.js';
import { dhcpRepr, frameSeen } from './views.js';

const SRV_MAC = 0x02427e5c1a01;
const SRV_IP = 0xac110001; // 172.17.0.1
const RANGE = [0xac110064, 0xac1100c8] as const; // .100 – .200

function dhcpServer() {
  const pool = new FramePool({ capacity: 64 });
  const owner = new Map<number, number>();
  const cfg: DhcpConfig = {
    serverIp: SRV_IP,
    serverMac: SRV_MAC,
    subnet: 0xac110000,
    prefixLen: 16,
    router: SRV_IP,
    dns: [SRV_IP],
    leaseSeconds: 60,
    isFree: (a) => !owner.has(a),
    claim: (a, m) => !owner.has(a) && owner.set(a, m) !== undefined,
    release: (a) => void owner.delete(a),
    rangeFirst: RANGE[0],
    rangeLast: RANGE[1],
  };
  return { pool, owner, srv: new DhcpServer(pool, cfg, { seed: 7, maxLeases: 16, offerSeconds: 5 }) };
}

/** Client messages a DHCP server meets: few MACs (so leases collide), requested addresses in and out of range. */
const clientMsg: fc.Arbitrary<Uint8Array> = fc
  .record({
    r: dhcpRepr,
    macI: fc.integer({ min: 0, max: 5 }),
    req: fc.option(fc.integer({ min: RANGE[0] - 3, max: RANGE[1] + 3 })),
    sid: fc.option(fc.constantFrom(SRV_IP, 0xac110063)),
    uni: fc.boolean(),
  })
  .map(({ r, macI, req, sid, uni }) => {
    const m: DhcpReprT = { ...r, op: 1, giaddr: 0, chaddr: 0x525400000010 + macI, requestedIp: req ?? undefined, serverId: sid ?? undefined, other: undefined };
    return uni ? dhcpFrame(m, m.chaddr, SRV_IP, r.ciaddr, SRV_MAC) : dhcpFrame(m);
  });

describe('DHCP server under random, mutated and valid client messages', () => {
  it('never throws, never touches the request, replies are well-formed, the pool and counters balance, leases stay unique', () => {
    let acks = 0;
    fc.assert(
      fc.property(fc.array(fc.tuple(anyOf(clientMsg, [...FRAME_FIELDS, 42, 44, 46, 38 + 236, 38 + 242], 400), fc.nat(20_000)), { minLength: 1, maxLength: 25 }), (steps) => {
        const { pool, owner, srv } = dhcpServer();
        let now = 1_000_000;
        let replies = 0;
        for (const [x, dt] of steps) {
          now += dt;
          if (dt > 15_000) srv.tick(now);
          const h = pool.fromBytes(x);
          const r = srv.handle(h, now);
          expect(pool.toBytes(h)).toEqual(x);
          pool.free(h);
          if (r >= 0) {
            replies++;
            const f = pool.toBytes(r);
            pool.free(r);
            const seen = frameSeen(f, 0, f.length);
            expect(seen?.ip?.ok).toBe(true);
            expect(seen?.udp?.ok).toBe(true);
            expect(seen?.udp?.f.slice(0, 2)).toEqual([67, 68]);
            const d = seen?.dhcp;
            expect(d).toBeTruthy();
            expect(d!.r.op).toBe(2);
            expect(d!.r.xid).toBe(u32(x, 14 + 20 + 8 + 4)); // the request's xid
            expect(d!.r.serverId).toBe(SRV_IP);
            expect([2, 5, 6]).toContain(d!.r.messageType);
            const y = d!.r.yiaddr;
            if (y !== 0) expect(y >= RANGE[0] && y <= RANGE[1]).toBe(true);
            if (d!.r.messageType === 5 && y !== 0) acks++;
          }
          expect(pool.inUse).toBe(0);
        }
        const c = srv.counters;
        expect(c.rxPackets).toBe(steps.length);
        expect(c.txPackets).toBe(replies);
        expect(c.txPackets + c.drops).toBeLessThanOrEqual(c.rxPackets);
        const leases = srv.leases(now);
        expect(new Set(leases.map((l) => l.ip)).size).toBe(leases.length);
        expect(new Set(leases.map((l) => l.mac)).size).toBe(leases.length);
        for (const l of leases) expect(owner.get(l.ip)).toBe(l.mac); // what it hands out is claimed with IPAM for that MAC
      }),
      fcParams(250),
    );
    expect(acks).toBeGreaterThan(0); // the valid share of the input really got leases

  });
});

function dnsWorld() {
  const st = new State();
  st.createNetwork({ name: 'frontend' });
  st.createNetwork({ name: 'backend' });
  st.createContainer({ name: 'web', network: 'frontend', hostname: 'webhost' });
  st.createContainer({ name: 'app', network: 'frontend', aliases: ['api'] });
  st.connect('backend', 'app', { aliases: ['svc'] });
  st.createContainer({ name: 'db', network: 'backend' });
  const table = new DnsTable();
  table.update(st.networks(), st.containers());
  const web = st.findContainer('web');
  const frontend = web.endpoints[0].networkId;
  // what web may learn: addresses on frontend only
  const visible = new Set(st.containers().flatMap((c) => c.endpoints.filter((e) => e.networkId === frontend).map((e) => e.ip)));
  const hidden = st.containers().flatMap((c) => c.endpoints.filter((e) => e.networkId !== frontend).map((e) => e.ip));
  const rev = (ip: string): string => ip.split('.').reverse().join('.') + '.in-addr.arpa';
  const names = ['web', 'app', 'api', 'db', 'svc', 'webhost', 'app.frontend', 'db.backend', 'APP.', 'nope', 'a.b.c', ...[...visible, ...hidden].map(rev)];
  return { resolver: new DnsResolver(table, { upstreams: [] }), frontend, visible, hidden, names };
}

describe('embedded DNS under random, mutated and valid queries', () => {
  const w = dnsWorld();
  const types: dnsPacket.RecordType[] = ['A', 'AAAA', 'PTR', 'MX', 'TXT', 'SRV', 'CNAME', 'NAPTR'];
  const query: fc.Arbitrary<Uint8Array> = fc
    .record({ id: u16a, name: fc.oneof(fc.constantFrom(...w.names), fc.domain()), type: fc.constantFrom(...types), rd: fc.boolean(), opt: fc.option(fc.integer({ min: 0, max: 65535 })), n: fc.constantFrom(1, 1, 1, 0, 2) })
    .map(({ id, name, type, rd, opt, n }) => {
      const q = { name, type, class: 'IN' as const };
      const additionals: dnsPacket.Answer[] = opt === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: opt, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
      return new Uint8Array(dnsPacket.encode({ type: 'query', id, flags: rd ? dnsPacket.RECURSION_DESIRED : 0, questions: Array.from({ length: n }, () => q), additionals }));
    });

  /** null, or a well-formed response to x that shows nothing of another network */
  function checkAnswer(x: Uint8Array, reply: Buffer | null): void {
    if (x.length < 12) expect(reply).toBeNull();
    if (reply === null) return;
    const p = dnsPacket.decode(reply);
    expect(p.type).toBe('response');
    expect(p.id).toBe(u16(x, 0));
    for (const a of p.answers ?? []) {
      if (a.type === 'A') expect(w.visible.has(a.data as string)).toBe(true);
      if (a.type === 'PTR') expect(a.data as string).toMatch(/\.frontend$/);
    }
    expect(reply.length).toBeLessThanOrEqual(4096);
  }

  it('the resolver never rejects; answers are null or well-formed; a frontend-only asker never sees backend addresses', async () => {
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(anyOf(query, [0, 2, 4, 6, 8, 10, 12], 300), async (x) => {
        const reply = await w.resolver.handle(Buffer.from(x), { networks: [w.frontend], internalOnly: false }, 'udp');
        checkAnswer(x, reply);
        if (reply !== null && (dnsPacket.decode(reply).answers ?? []).length > 0) answered++;
      }),
      fcParams(800),
    );
    expect(answered).toBeGreaterThan(0);
  });

  it('gateway DNS (UDP 53 inside the dataplane): any frame in, only well-formed answers to the asker out, pool balanced', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(anyOf(query.map((q) => ipFrame(SRV_MAC, 0x0242ac110002, 0xac110002, SRV_IP, udpL4(0xac110002, SRV_IP, 40000, 53, q))), FRAME_FIELDS, 300), { minLength: 1, maxLength: 8 }), async (frames) => {
        const pool = new FramePool({ capacity: 32 });
        const sent: number[] = [];
        const queries: Uint8Array[] = [];
        const gw = new GatewayDns(pool, {
          gatewayIp: SRV_IP,
          gatewayMac: SRV_MAC,
          resolve: (q) => {
            queries.push(new Uint8Array(q));
            return w.resolver.handle(q, { networks: [w.frontend], internalOnly: false }, 'udp');
          },
          send: (h) => void sent.push(h),
        });
        for (const x of frames) {
          const h = pool.fromBytes(x);
          expect(gw.handle(h, 0)).toBe(-1);
          expect(pool.toBytes(h)).toEqual(x);
          pool.free(h);
        }
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        expect(gw.queries).toBe(frames.length);
        expect(gw.answers + gw.dropped).toBe(frames.length);
        expect(sent.length).toBe(gw.answers);
        for (const h of sent) {
          const f = pool.toBytes(h);
          pool.free(h);
          const seen = frameSeen(f, 0, f.length);
          expect(seen?.ip?.ok).toBe(true);
          expect(seen?.udp?.ok).toBe(true);
          expect(seen?.eth.src).toBe(SRV_MAC);
          expect(seen?.udp?.f[0]).toBe(53);
        }
        expect(pool.inUse).toBe(0);
      }),
      fcParams(150),
    );
  });
});
