/**
 * SwitchControl — the cold half of LearningSwitch (learning-switch.ts, which
 * extends it with the per-frame path): its state and control surface.
 *
 * Configuration (constructor): tableSize (max MACs, default 8192), agingMs
 * (default 300 000, Docker/Linux bridge default), seed (hash key; the daemon
 * passes a random one), batch (handles taken from a ring at a time, default
 * 256; read by LearningSwitch), portLimit (dynamic MACs per port, default
 * max(64, tableSize/8), 0 = no limit).
 *
 * Control: attach/detach ports (a `trunk` port is not bound by portLimit),
 * trust(port) and `isolated` (enable_icc=false, see learning-switch.ts),
 * addStatic(mac, port) pins a MAC (the gateway's, endpoints': never ages,
 * never moves, not counted against tableSize or any port's limit, see
 * MacTable), removeStatic(mac, port) unpins it, removeMac/flushDynamic
 * forget MACs, lookup/macCount/macCapacity read the table.
 *
 * Storage: the MacTable, and per port id (0..65535) typed arrays and
 * arrays: the attached Port, its tx ring, its largest frame (maxLen, filled
 * by process()), trusted; `members` = the attached ports in attach order
 * (replaced, never mutated, on attach/detach).
 *
 * Counters read here (cold snapshots: macStats(), macTable()): the
 * element's `counters` (reasons[macTableFull]) and `security` (portLimit:
 * sources not learned at the port's limit; macSpoof: frames dropped for a
 * pinned MAC on another port), both counted by the per-frame path.
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';
import { MacTable } from './mac-table.js';

export interface LearningSwitchOptions {
  /** max MAC entries (default 8192) */
  tableSize?: number;
  /** dynamic entries not seen for this long are removed by tick() (default 300 000 ms) */
  agingMs?: number;
  /** MAC table hash key (default: random) */
  seed?: number;
  /** handles popped from a ring at a time (default 256) */
  batch?: number;
  /** dynamic MACs one port may learn (default max(64, tableSize/8); 0 = no limit) */
  portLimit?: number;
}

/** Cold: the switch's MAC table and port-security numbers. */
export interface MacStats {
  entries: number;
  capacity: number;
  static: number;
  dynamic: number;
  /** static entries that still fit */
  staticRoom: number;
  portLimit: number;
  /** sources not learned: table full */
  macTableFull: number;
  /** sources not learned: the port's limit reached (frame forwarded) */
  portLimitHits: number;
  /** frames dropped: a pinned source MAC on another port */
  macSpoof: number;
}

export interface MacTableRow {
  mac: number;
  port: number;
  ageMs: number;
  static: boolean;
}

const TABLE_FULL = DropReason.macTableFull;

export class SwitchControl {
  readonly counters = new Counters();
  /** enable_icc=false: frames pass only to or from a trusted port (see trust()) */
  isolated = false;
  readonly agingMs: number;
  /** port security: sources not learned (port limit), frames dropped (pinned MAC spoofed) */
  readonly security = { portLimit: 0, macSpoof: 0 };

  protected readonly pool: FramePool;
  protected readonly table: MacTable;
  /** attached ports indexed by id (null = not attached) */
  protected readonly byId: (Port | null)[];
  /** attached ports, dense, in attach order */
  protected members: Port[] = [];
  /**
   * per port id: largest untagged frame the port takes (mtu + 18), 0 when
   * it is down or not attached. Refreshed from the ports at the start of
   * every process(), so the hot loop reads a typed array, not Port fields.
   */
  protected readonly maxLen = new Int32Array(0x10000);
  /** per port id: the attached port's tx ring (null = not attached) */
  protected readonly txById: (Ring | null)[];
  /** per port id: 1 = trusted (exempt from isolation) */
  protected readonly trusted = new Uint8Array(0x10000);
  /** last clock value seen by process()/tick() (for macTable() ages) */
  protected now = 0;

  constructor(pool: FramePool, opts: LearningSwitchOptions = {}) {
    this.pool = pool;
    this.agingMs = opts.agingMs ?? 300_000;
    const seed = opts.seed ?? (Math.random() * 0x100000000) >>> 0;
    const size = opts.tableSize ?? 8192;
    this.table = new MacTable(size, seed);
    this.table.portLimit = Math.max(0, opts.portLimit ?? Math.max(64, size >>> 3));
    this.byId = new Array<Port | null>(0x10000).fill(null);
    this.txById = new Array<Ring | null>(0x10000).fill(null);
  }

  /** Port joins this switch; a `trunk` (the VXLAN tunnel port, with every remote endpoint behind it) is not bound by portLimit. */
  attach(port: Port, trunk = false): void {
    if (port.id < 0 || port.id > 0xffff) throw new Error(`port id ${port.id} out of range`);
    const cur = this.byId[port.id];
    if (cur === port) return;
    if (cur !== null) throw new Error(`another port with id ${port.id} is attached`);
    this.table.trunk[port.id] = trunk ? 1 : 0;
    this.byId[port.id] = port;
    this.txById[port.id] = port.tx;
    this.members = [...this.members, port];
  }

  /** Port leaves: its MACs (static ones too) are flushed and the frames in its rings freed. */
  detach(port: Port): void {
    if (this.byId[port.id] !== port) return;
    this.byId[port.id] = null;
    this.txById[port.id] = null;
    this.maxLen[port.id] = 0;
    this.trusted[port.id] = 0;
    this.table.trunk[port.id] = 0;
    this.members = this.members.filter((p) => p !== port);
    this.table.flushPort(port.id);
    const pool = this.pool;
    for (let h = port.rx.pop(); h >= 0; h = port.rx.pop()) pool.free(h);
    for (let h = port.tx.pop(); h >= 0; h = port.tx.pop()) pool.free(h);
  }

  /** Ports currently attached. */
  ports(): readonly Port[] {
    return this.members;
  }

  /** With `isolated`, frames to and from `port` still pass (the router's port). */
  trust(port: Port, on = true): void {
    if (port.id < 0 || port.id > 0xffff) throw new Error(`port id ${port.id} out of range`);
    this.trusted[port.id] = on ? 1 : 0;
  }

  /** Whether `port` is trusted. */
  isTrusted(port: Port): boolean {
    return this.trusted[port.id] === 1;
  }

  /** Pin `mac` to `port` (never ages, never moves). */
  addStatic(mac: number, port: Port): void {
    if (!this.table.addStatic(mac, port.id)) {
      this.counters.reasons[TABLE_FULL]++;
      throw new Error('MAC table full');
    }
  }

  /** Unpin `mac` if it is pinned to `port` (a container left); true if it went. */
  removeStatic(mac: number, port: Port): boolean {
    if (!this.table.isStatic(mac) || this.table.lookup(mac) !== port.id) return false;
    return this.table.remove(mac);
  }

  /** Forget one MAC. */
  removeMac(mac: number): boolean {
    return this.table.remove(mac);
  }

  /** Forget every learned MAC (static ones stay). */
  flushDynamic(): number {
    return this.table.age(Infinity, 0);
  }

  /** Port id `mac` forwards to, or −1. */
  lookup(mac: number): number {
    return this.table.lookup(mac);
  }

  /** Number of MAC entries / table capacity. */
  get macCount(): number {
    return this.table.size;
  }
  get macCapacity(): number {
    return this.table.capacity;
  }

  /** Cold: MAC table use and port-security counters. */
  macStats(): MacStats {
    const t = this.table;
    return {
      entries: t.size,
      capacity: t.capacity,
      static: t.staticSize,
      dynamic: t.dynamicSize,
      staticRoom: t.staticRoom,
      portLimit: t.portLimit,
      macTableFull: this.counters.reasons[TABLE_FULL],
      portLimitHits: this.security.portLimit,
      macSpoof: this.security.macSpoof,
    };
  }

  /** Cold, for the API: every entry with its age (relative to the last process/tick clock). */
  macTable(): MacTableRow[] {
    return this.table.entries().map((e) => ({
      mac: e.mac,
      port: e.port,
      ageMs: e.static ? 0 : Math.max(0, this.now - e.seen),
      static: e.static,
    }));
  }
}
