/**
 * ParentDemux — splits one parent interface into 802.1Q VLAN sub-ports
 * (`-o parent=eth0.100`), the way the kernel's 8021q module splits eth0
 * into eth0.100, eth0.200 … beside the untagged eth0 itself.
 *
 * Ports:
 * - `device`: the parent interface's Port, read and written by a
 *   PacketDevice (AF_PACKET). Its rx ring holds frames as they were on the
 *   wire (an 802.1Q tag restored in the frame bytes); what goes onto its tx
 *   ring is sent as is.
 * - one virtual Port per VLAN, made by vlanPort(vid, name): VID 1..4094,
 *   or 0 for the untagged traffic. To the element above it (a
 *   MacvlanSwitch, an IpvlanSwitch) it looks like a device port: untagged
 *   frames of that VLAN arrive on its rx ring, frames pushed on its tx ring
 *   leave through the parent, tagged with the VID.
 *
 * Receive (device.rx): a frame with TPID 0x8100 carries VID v: the tag is
 * removed in place (popVlanTag: the 12 address bytes move 4 forward and the
 * frame start follows, no copy) and the frame goes to VLAN v's rx ring. A
 * priority-tagged frame (VID 0) is untagged the same way and goes to the
 * untagged port (VLAN 0), as Linux does. Anything else (untagged, or an
 * 802.1ad 0x88a8 outer tag, which is not ours to take apart) goes to VLAN
 * 0's port unchanged. pool.inPort[h] becomes the VLAN port's id.
 *
 * Transmit (each VLAN port's tx): a frame of VLAN v > 0 gets a tag
 * (TPID 0x8100, PCP 0, DEI 0, VID v) pushed into its headroom
 * (pushVlanTag + pool.prepend, no copy); VLAN 0's frames go out unchanged.
 * Then onto device.tx.
 *
 * Two VLAN ports never see each other's frames: the demux only ever moves
 * frames between the device and one VLAN port.
 *
 * Checks (each failure frees the frame and counts the reason):
 *   runt       shorter than 14 bytes (18 when it says it is tagged)
 *   filtered   no port for the frame's VLAN (also VID 4095, reserved)
 *   portDown   the VLAN port is down (frames to it and waiting on it), or
 *              the device port is down (frames to it)
 *   oversize   no headroom left for the tag (never with the pool default)
 *   ringFull   the next ring was full
 *
 * Counters:
 * - `counters` (element): rxPackets/rxBytes = frames taken in (device rx
 *   and VLAN tx rings), txPackets/txBytes = frames handed on, drops by
 *   reason (all of them).
 * - each VLAN port's counters: rx = frames delivered to its rx ring (bytes
 *   without the tag), tx = frames it sent to the device (bytes with the
 *   tag), drops = frames to or from that VLAN lost here.
 * - the device port's counters: rx/tx are kept by the device as usual; the
 *   demux adds its drops of received frames that belong to no VLAN port
 *   (runt, filtered), so they show on the parent interface.
 *
 * Configuration: constructor(pool, device, { portIds? }): with a PortIds
 * the VLAN ports get fresh daemon-wide ids (given back by release()),
 * without one they share the device port's id. vlanPort() returns the
 * existing port of a VID when there is one; release(vid) removes it and
 * frees the frames in its rings.
 *
 * Hot path: process() allocates nothing; VLAN ports are found by VID in a
 * 4096-entry array. Time is injected (process(now) takes the caller's clock;
 * nothing here depends on it).
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { Element } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import { Port, type PortIds } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';
import { ETHERTYPE, VLAN, popVlanTag, pushVlanTag } from '../wire/ethernet.js';

export interface ParentDemuxOptions {
  /** hands out ids for the VLAN ports (default: they share the device port's id) */
  portIds?: PortIds;
  /** ring size of the VLAN ports (power of two, default 1024) */
  ringSize?: number;
}

const RUNT = DropReason.runt;
const FILTERED = DropReason.filtered;
const PORT_DOWN = DropReason.portDown;
const OVERSIZE = DropReason.oversize;
const RING_FULL = DropReason.ringFull;
const TAG = VLAN.TAG_LEN;

export class ParentDemux implements Element {
  readonly counters = new Counters();
  readonly device: Port;
  private readonly pool: FramePool;
  private readonly portIds: PortIds | null;
  private readonly ringSize: number;
  /** VID → its port (null = none) */
  private readonly byVid: (Port | null)[] = new Array<Port | null>(4096).fill(null);
  /** the VLAN ports, dense, with their VIDs */
  private members: Port[] = [];
  private vids: number[] = [];

  constructor(pool: FramePool, device: Port, opts: ParentDemuxOptions = {}) {
    this.pool = pool;
    this.device = device;
    this.portIds = opts.portIds ?? null;
    this.ringSize = opts.ringSize ?? 1024;
  }

  // ---------------------------------------------------------------- cold

  /** The port of VLAN `vlan` (0 = untagged), made on first use. */
  vlanPort(vlan: number, name: string): Port {
    if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4094) throw new Error(`VLAN id ${vlan} out of range (0..4094, 0 = untagged)`);
    const cur = this.byVid[vlan];
    if (cur !== null) return cur;
    const id = this.portIds !== null ? this.portIds.alloc() : this.device.id;
    const p = new Port(id, name, this.ringSize);
    p.mtu = this.device.mtu;
    this.byVid[vlan] = p;
    this.members = [...this.members, p];
    this.vids = [...this.vids, vlan];
    return p;
  }

  /** The port of VLAN `vlan`, or null. */
  port(vlan: number): Port | null {
    return vlan >= 0 && vlan < 4096 ? (this.byVid[vlan] ?? null) : null;
  }

  /** VIDs with a port, in creation order. */
  vlans(): readonly number[] {
    return this.vids;
  }

  /** Remove VLAN `vlan`'s port: frames in its rings are freed, its id given back. */
  release(vlan: number): void {
    if (vlan < 0 || vlan > 4094) return;
    const p = this.byVid[vlan];
    if (p === null) return;
    this.byVid[vlan] = null;
    const i = this.members.indexOf(p);
    this.members = this.members.filter((_, j) => j !== i);
    this.vids = this.vids.filter((_, j) => j !== i);
    const pool = this.pool;
    for (let h = p.rx.pop(); h >= 0; h = p.rx.pop()) pool.free(h);
    for (let h = p.tx.pop(); h >= 0; h = p.tx.pop()) pool.free(h);
    if (this.portIds !== null) this.portIds.release(p.id);
  }

  // ----------------------------------------------------------------- hot

  process(_now: number): void {
    this.receive();
    this.transmit();
  }

  /** device.rx → VLAN ports' rx rings, tags removed. */
  private receive(): void {
    const pool = this.pool;
    const bytes = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const byVid = this.byVid;
    const c = this.counters;
    const dc = this.device.counters;
    const rx = this.device.rx;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      let len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (len < 14) {
        this.dropBoth(h, dc, RUNT);
        continue;
      }
      const o = offsets[h];
      let vid = 0;
      if (((bytes[o + 12] << 8) | bytes[o + 13]) === ETHERTYPE.VLAN) {
        if (len < VLAN.HLEN) {
          this.dropBoth(h, dc, RUNT);
          continue;
        }
        vid = ((bytes[o + 14] << 8) | bytes[o + 15]) & 0x0fff;
        if (vid === 0xfff || byVid[vid] === null) {
          this.dropBoth(h, dc, FILTERED);
          continue;
        }
        popVlanTag(bytes, o);
        pool.consume(h, TAG);
        len -= TAG;
      }
      const p = byVid[vid];
      if (p === null) {
        this.dropBoth(h, dc, FILTERED);
        continue;
      }
      if (!p.up) {
        this.dropBoth(h, p.counters, PORT_DOWN);
        continue;
      }
      pool.inPort[h] = p.id;
      if (!p.rx.push(h)) {
        this.dropBoth(h, p.counters, RING_FULL);
        continue;
      }
      const pc = p.counters;
      pc.rxPackets++;
      pc.rxBytes += len;
      c.txPackets++;
      c.txBytes += len;
    }
  }

  /** VLAN ports' tx rings → device.tx, tags added. */
  private transmit(): void {
    const members = this.members;
    const vids = this.vids;
    const pool = this.pool;
    const bytes = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const c = this.counters;
    const dev = this.device;
    const out: Ring = dev.tx;
    for (let i = 0; i < members.length; i++) {
      const p = members[i];
      const tx = p.tx;
      if (tx.empty) continue;
      const pc = p.counters;
      const vid = vids[i];
      const pDown = !p.up;
      const devDown = !dev.up;
      for (let h = tx.pop(); h >= 0; h = tx.pop()) {
        const len = lengths[h];
        c.rxPackets++;
        c.rxBytes += len;
        if (pDown || devDown) {
          this.dropBoth(h, pc, PORT_DOWN);
          continue;
        }
        if (len < 14) {
          this.dropBoth(h, pc, RUNT);
          continue;
        }
        if (vid !== 0) {
          const o = offsets[h];
          if (!pool.prepend(h, TAG)) {
            this.dropBoth(h, pc, OVERSIZE);
            continue;
          }
          pushVlanTag(bytes, o, vid);
        }
        const n = lengths[h];
        if (!out.push(h)) {
          this.dropBoth(h, pc, RING_FULL);
          continue;
        }
        pc.txPackets++;
        pc.txBytes += n;
        c.txPackets++;
        c.txBytes += n;
      }
    }
  }

  /** Free h, count the drop on the element and on `port`. */
  private dropBoth(h: number, port: Counters, reason: number): void {
    this.pool.free(h);
    this.counters.drop(reason);
    port.drop(reason);
  }
}
