import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { MAC, ip, parse, pkt } from '../router/testbed.js';
import { GatewayDns } from './gateway-dns.js';

const GW = ip('10.230.0.1');
const GW_MAC = 0x02420ae60001;
const CLIENT = ip('10.230.0.130');

function setup(resolve: (q: Buffer) => Promise<Buffer | null>) {
  const pool = new FramePool({ capacity: 16, slotSize: 2048, headroom: 128 });
  const sent: Uint8Array[] = [];
  const dns = new GatewayDns(pool, {
    gatewayIp: GW,
    gatewayMac: GW_MAC,
    resolve,
    send: (h) => {
      sent.push(pool.toBytes(h));
      pool.free(h);
    },
  });
  return { pool, dns, sent };
}

const query = Uint8Array.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 99, 49, 0, 0, 1, 0, 1]);

describe('GatewayDns', () => {
  it('answers from the gateway back to the asker, checksums right', async () => {
    const seen: Buffer[] = [];
    const { pool, dns, sent } = setup(async (q) => {
      seen.push(q);
      return Buffer.concat([q, Buffer.from([9, 9, 9])]);
    });
    const h = pool.fromBytes(pkt({ dmac: GW_MAC, smac: MAC.A, src: CLIENT, dst: GW, proto: 17, sport: 40001, dport: 53, payload: query }));
    expect(dns.handle(h, 0)).toBe(-1);
    pool.free(h);
    await new Promise((r) => setImmediate(r));
    expect(seen).toHaveLength(1);
    expect([...seen[0]]).toEqual([...query]);
    expect(sent).toHaveLength(1);
    const p = parse(sent[0]);
    expect(p.checksumsOk).toBe(true);
    expect([p.dmac, p.smac, p.src, p.dst, p.sport, p.dport]).toEqual([MAC.A, GW_MAC, GW, CLIENT, 53, 40001]);
    expect([...p.l4.slice(8)]).toEqual([...query, 9, 9, 9]);
    expect([dns.queries, dns.answers, dns.dropped]).toEqual([1, 1, 0]);
    expect(pool.inUse).toBe(0);
  });

  it('drops runts, non-UDP, bad checksums, no answer and resolver errors', async () => {
    let mode: 'null' | 'throw' = 'null';
    const { pool, dns, sent } = setup(async () => {
      if (mode === 'throw') throw new Error('boom');
      return null;
    });
    const frames = [
      new Uint8Array(10),
      pkt({ dmac: GW_MAC, smac: MAC.A, src: CLIENT, dst: GW, proto: 1 }),
      (() => {
        const f = pkt({ dmac: GW_MAC, smac: MAC.A, src: CLIENT, dst: GW, proto: 17, dport: 53, payload: query });
        f[f.length - 1] ^= 0xff;
        return f;
      })(),
      pkt({ dmac: GW_MAC, smac: MAC.A, src: CLIENT, dst: GW, proto: 17, dport: 53, payload: query }),
    ];
    for (const f of frames) {
      const h = pool.fromBytes(f);
      expect(dns.handle(h, 0)).toBe(-1);
      pool.free(h);
    }
    await new Promise((r) => setImmediate(r));
    mode = 'throw';
    const h = pool.fromBytes(frames[3]);
    dns.handle(h, 0);
    pool.free(h);
    await new Promise((r) => setImmediate(r));
    expect(sent).toEqual([]);
    expect([dns.queries, dns.answers, dns.dropped]).toEqual([5, 0, 5]);
  });
});
