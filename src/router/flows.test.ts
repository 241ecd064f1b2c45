import { describe, expect, it } from 'vitest';
import { Port } from '../dataplane/port.js';
import { Conntrack } from '../nat/conntrack.js';
import { FlowMaker, MARK_NAT, POLICY_DROP, POLICY_MASQ, POLICY_PLAIN, markIn, markOf, markOut, policy } from './flows.js';
import { IfaceTable } from './ifaces.js';
import { ip } from './testbed.js';

const C = ip('172.18.0.2');
const S = ip('93.184.216.34');
const U = ip('192.168.1.2');

describe('policy', () => {
  it('follows Docker: masquerade out, plain host ↔ network, everything else filtered', () => {
    const t = new IfaceTable();
    const add = (kind: 'network' | 'uplink' | 'host', internal = false) =>
      t.add({ kind, port: new Port(t.live.length + 1, kind), side: 'switch', ip: 0x0a000001 + t.live.length * 256, prefixLen: 24, mac: 1, mtu: 1500, internal });
    const [a, b, i, up, host] = [add('network'), add('network'), add('network', true), add('uplink'), add('host')];
    expect(policy(t, a, up)).toBe(POLICY_MASQ);
    expect(policy(t, a, host)).toBe(POLICY_PLAIN);
    expect(policy(t, host, a)).toBe(POLICY_PLAIN);
    expect(policy(t, host, i)).toBe(POLICY_PLAIN);
    for (const [x, y] of [[a, b], [a, a], [i, up], [i, host], [up, a], [up, host], [up, up], [host, up], [host, host]]) expect(policy(t, x, y)).toBe(POLICY_DROP);
  });
});

describe('FlowMaker', () => {
  it('marks flows with their ifaces and whether they NAT', () => {
    const m = markOf(3, 4095 - 1, true);
    expect([markIn(m), markOut(m), (m & MARK_NAT) !== 0]).toEqual([3, 4094, true]);
    const ct = new Conntrack({ capacity: 8, seed: 1 });
    const fm = new FlowMaker(ct, 40000, 40001, 1);
    const f = fm.make(6, C, 1234, S, 80, S, 80, U, 0, 2, 0);
    expect([ct.srcIp(f, 1), ct.srcPort(f, 1), ct.dstIp(f, 1), ct.dstPort(f, 1)]).toEqual([S, 80, U, 1234]);
    expect(ct.mark[f]).toBe(markOf(0, 2, true));
    const plain = fm.make(17, C, 5, S, 6, S, 6, C, 0, 1, 0);
    expect(ct.mark[plain]).toBe(markOf(0, 1, false));
  });

  it('keeps the port when free, else takes one from the range; ICMP identifiers too', () => {
    const ct = new Conntrack({ capacity: 8, seed: 1 });
    const fm = new FlowMaker(ct, 40000, 40001, 1);
    expect(fm.pickPort(6, S, 80, U, 1234)).toBe(1234);
    fm.make(6, C, 1234, S, 80, S, 80, U, 0, 2, 0);
    const p = fm.pickPort(6, S, 80, U, 1234);
    expect([40000, 40001]).toContain(p);
    fm.make(6, C + 1, 1234, S, 80, S, 80, U, 0, 2, 0);
    fm.make(6, C + 2, 1234, S, 80, S, 80, U, 0, 2, 0);
    expect(fm.make(6, C + 3, 1234, S, 80, S, 80, U, 0, 2, 0)).toBe(-1);
    expect(fm.natPortsExhausted).toBe(1);
    const e1 = fm.make(1, C, 7, S, 7, S, 7, U, 0, 2, 0);
    const e2 = fm.make(1, C + 1, 7, S, 7, S, 7, U, 0, 2, 0);
    expect([ct.srcPort(e1, 1), ct.dstPort(e1, 1)]).toEqual([7, 7]);
    expect(ct.srcPort(e2, 1)).toBe(ct.dstPort(e2, 1));
    expect(ct.srcPort(e2, 1)).not.toBe(7);
    expect(() => new FlowMaker(ct, 5, 4, 1)).toThrow();
  });

  it('removeIface drops the flows through an iface only', () => {
    const ct = new Conntrack({ capacity: 8, seed: 1 });
    const fm = new FlowMaker(ct, 40000, 40100, 1);
    fm.make(6, C, 1, S, 80, S, 80, U, 0, 2, 0);
    fm.make(6, C, 2, S, 80, S, 80, U, 1, 2, 0);
    fm.make(6, C, 3, S, 80, S, 80, U, 1, 3, 0);
    expect(fm.removeIface(0)).toBe(1);
    expect(fm.removeIface(2)).toBe(1);
    expect(ct.size).toBe(1);
  });
});
