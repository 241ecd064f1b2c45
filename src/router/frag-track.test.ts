import { describe, expect, it } from 'vitest';
import { FragTrack } from './frag-track.js';
import { ip } from './testbed.js';

describe('FragTrack', () => {
  it('remembers a datagram’s flow until it expires', () => {
    const f = new FragTrack(16, 1, 30_000);
    f.remember(ip('172.18.0.2'), ip('1.2.3.4'), 77, 17, (5 << 1) | 1, 0);
    expect(f.find(ip('172.18.0.2'), ip('1.2.3.4'), 77, 17, 29_999)).toBe(11);
    expect(f.find(ip('172.18.0.2'), ip('1.2.3.4'), 78, 17, 1)).toBe(-1);
    expect(f.find(ip('172.18.0.2'), ip('1.2.3.4'), 77, 6, 1)).toBe(-1);
    expect(f.find(ip('172.18.0.2'), ip('1.2.3.4'), 77, 17, 30_000)).toBe(-1);
    f.remember(1, 2, 3, 17, 4, 0);
    f.clear();
    expect(f.find(1, 2, 3, 17, 0)).toBe(-1);
  });
});
