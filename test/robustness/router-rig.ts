/**
 * The router fuzz test's world (cold; test code only): the five ifaces of
 * the router test bed (src/router/testbed.ts) as tags 0..4, which tag may
 * leave by which iface (allowed), the frames each side sends (new flows,
 * replies to them, ARP for the gateway, DHCP clients whose client id
 * carries the tag, DNS queries to the gateway, garbage), and the DHCP and
 * DNS services the test bed's networks get.
 */
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { State } from '../../src/control/model.js';
import { A1, A2, A_GW, B1, B_GW, HOST_IP, HOST_PEER, I1, I_GW, MAC, S, type Testbed, UP_IP, X, type IfName } from '../../src/router/testbed.js';
import { DhcpServer } from '../../src/services/dhcp.js';
import { DnsResolver, DnsTable } from '../../src/services/dns.js';
import { FRAME_FIELDS, anyOf, arpFrame, dhcpFrame, icmpL4, ipFrame, taggedPayload, tcpL4, u16a, udpL4 } from './frames.js';
import { netFrame, tagOf } from './rig.js';

export const NAMES: IfName[] = ['A', 'B', 'I', 'UP', 'HOST'];
export const NETS = [0, 1, 2]; // A, B, I: the bridge networks
export const GWS = [A_GW, B_GW, I_GW, UP_IP, HOST_IP];
export const GWMACS = [MAC.A, MAC.B, MAC.I, MAC.UP, MAC.HOST];
export const HOSTS = [[A1, A2], [B1], [I1], [S, S, X], [HOST_PEER]];
export const HOSTMACS = [[MAC.A1, MAC.A2], [MAC.B1], [MAC.I1], [MAC.UPGW], [MAC.HOSTPEER]];
export const EVERYONE = [A_GW, B_GW, I_GW, UP_IP, HOST_IP, A1, A2, B1, I1, S, X, HOST_PEER, 0xffffffff, 0xac12ffff];
export const PORTS = [53, 80];

/** what leaves iface y may carry the tag of network x: same iface, NAT/host traffic, never one bridge network to another */
export function allowed(x: number, y: number): boolean {
  if (x === y) return true;
  if (x === 2) return false; // internal: nothing leaves it
  if (NETS.includes(y)) return x === 3 || x === 4 ? y !== 2 || x === 4 : false;
  return x === 0 || x === 1 || (y === 2 && x === 4); // to UP/HOST: from A, B (UP ↔ HOST never)
}

export function frameFor(n: number): fc.Arbitrary<Uint8Array> {
  const tag = tagOf(n, 0);
  const pl = taggedPayload(tag, 18);
  const own = fc.constantFrom(...HOSTS[n]);
  const ownMac = fc.constantFrom(...HOSTMACS[n]);
  const likely = n === 4 ? [A1, I1, B1] : n === 3 ? [UP_IP] : n === 2 ? [I_GW, HOST_PEER] : [S, S, X, HOST_PEER];
  const anyIp = fc.oneof({ arbitrary: fc.constantFrom(...likely), weight: 3 }, fc.constantFrom(...EVERYONE));
  const port = fc.constantFrom(...PORTS);
  // new flows outward, and for UP/HOST replies to them (dst port 40000 is what masquerade keeps)
  const flow = fc.tuple(ownMac, own, anyIp, port, fc.constantFrom(1, 6, 17), fc.constantFrom(true, true, false)).map(([sm, si, di, p, proto, r]) => {
    const reply = r && n >= 3;
    const [dip, sp, dp] = reply ? [GWS[n], p, 40000] : [di, 40000, p];
    const l4 = proto === 17 ? udpL4(si, dip, sp, dp, pl) : proto === 6 ? tcpL4(si, dip, sp, dp, reply ? 0x12 : 0x02, pl) : icmpL4(reply ? 0 : 8, 0, 40000, pl);
    return ipFrame(GWMACS[n], sm, si, dip, l4);
  });
  const arpGw = fc.tuple(ownMac, own, fc.constantFrom(1, 2)).map(([sm, si, op]) => arpFrame(op, sm, si, op === 1 ? 0 : GWMACS[n], GWS[n], op === 1 ? 0xffffffffffff : GWMACS[n]));
  // DHCP clients, their client id carrying the tag (the server echoes it)
  const dhcp = fc
    .tuple(fc.constantFrom(1, 3, 7, 8), fc.integer({ min: 0, max: 3 }), fc.boolean())
    .map(([type, k, bcast]) =>
      dhcpFrame({ op: 1, hops: 0, xid: k, secs: 0, flags: bcast ? 0x8000 : 0, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: 0x525400000100 + n * 16 + k, messageType: type, clientId: pl }),
    );
  // DNS to the gateway address (valid queries; the tag rides in the transaction's name)
  const query = fc.tuple(u16a, fc.constantFrom('web', 'x.y', 'nope')).map(([id, name]) => new Uint8Array(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] })));
  const dnsq = fc.tuple(ownMac, own, query).map(([sm, si, q]) => ipFrame(GWMACS[n], sm, si, GWS[n], udpL4(si, GWS[n], 40000, 53, q)));
  const valid = fc.oneof(flow, flow, arpGw, dhcp, dnsq);
  return fc.oneof({ arbitrary: valid, weight: 3 }, { arbitrary: anyOf(valid, FRAME_FIELDS, 120), weight: 3 }, netFrame({ macs: [GWMACS[n], ...HOSTMACS[n]], ips: EVERYONE }, tag));
}

/** a loop-back step: random bytes choose which earlier output to answer and whether to damage the answer */
export const loopBack = fc.uint8Array({ minLength: 2, maxLength: 2 });

export function dnsResolver(): DnsResolver {
  const st = new State();
  st.createNetwork({ name: 'x' });
  st.createContainer({ name: 'web', network: 'x' });
  const table = new DnsTable();
  table.update(st.networks(), st.containers());
  return new DnsResolver(table, { upstreams: [] });
}

export function dhcpFor(bed: Testbed, gw: number, mac: number): DhcpServer {
  const owner = new Map<number, number>();
  const net = (gw & 0xffff0000) >>> 0;
  return new DhcpServer(bed.pool, {
    serverIp: gw, serverMac: mac, subnet: net, prefixLen: 16, router: gw, dns: [gw], leaseSeconds: 60,
    isFree: (a) => !owner.has(a), claim: (a, m) => !owner.has(a) && owner.set(a, m) !== undefined, release: (a) => void owner.delete(a),
    rangeFirst: net + 100, rangeLast: net + 110,
  }, { seed: 1, maxLeases: 8 });
}
