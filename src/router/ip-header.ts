/** IPv4 header helpers shared by the router's input paths (no allocation). */
import { u16 } from '../wire/bytes.js';
import { csumUpdate16 } from '../wire/checksum.js';
import { IPV4 } from '../wire/ipv4.js';

/** The IPv4 header at o (hl bytes, ≤ 60) sums to 0xffff (int arithmetic, no fold loop). */
export function headerSumOk(b: Uint8Array, o: number, hl: number): boolean {
  let s = 0;
  for (let k = 0; k < hl; k += 2) s += (b[o + k] << 8) | b[o + k + 1];
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

/** TTL − 1 with the header checksum updated (RFC 1624). */
export function decTtl(b: Uint8Array, l3: number): void {
  const o = l3 + IPV4.TTL;
  const old = u16(b, o);
  b[o] = b[o] - 1;
  const c = l3 + IPV4.CHECKSUM;
  const v = csumUpdate16(u16(b, c), old, old - 0x100);
  b[c] = v >>> 8;
  b[c + 1] = v;
}
