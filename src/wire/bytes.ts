/**
 * Big-endian integer access on a Uint8Array, for the wire views.
 *
 * No bounds checks: a view calls these only after its wrap() has checked
 * that the header fits. Values are plain numbers; 32-bit reads are unsigned
 * (`>>> 0`). Nothing here allocates.
 */

export function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function w16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Cold path (tests, fixtures): "ff ff 00:11…" → bytes; whitespace, ':' and '-' are ignored. */
export function fromHex(hex: string): Uint8Array {
  const s = hex.replace(/[\s:-]/g, '');
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new Error('bad hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

/** Cold path: bytes → lowercase hex without separators. */
export function toHex(b: Uint8Array, off = 0, len = b.length - off): string {
  let s = '';
  for (let i = off; i < off + len; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}
