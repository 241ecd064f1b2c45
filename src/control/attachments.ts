/**
 * `usernet attach`: endpoints on bridge and overlay networks for what
 * configures itself by DHCP — a TAP (`--tap`), a unix socket a QEMU VM
 * connects to (`--qemu-stream`, `--qemu-dgram`), or an existing interface
 * such as QEMU's own tap (`--iface`). Kept in attachments.json beside
 * state.json and brought back on start.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import type { Logger } from 'pino';
import { HttpError } from './http-error.js';
import type { State } from './model.js';
import { linkExists } from './netns.js';
import type { AttachSpec, Runtime } from './runtime.js';
import { writeJsonAtomic } from './state-dir.js';

export interface Attachment {
  name: string;
  networkId: string;
  /** tap (the default for records of older versions), qemu-stream, qemu-dgram, iface */
  kind?: AttachSpec['kind'];
  /** the TAP or interface name, or the socket path */
  ifname: string;
  created: string;
}

function specOf(a: Attachment): AttachSpec {
  const kind = a.kind ?? 'tap';
  return kind === 'tap' || kind === 'iface' ? { kind, ifname: a.ifname } : { kind, path: a.ifname };
}

const ATTACHMENT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** a Linux interface name: at most 15 bytes, no '/', ':', '%' or white space */
const IFNAME = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,14}$/;

export class AttachmentStore {
  list: Attachment[] = [];

  constructor(
    private readonly file: string,
    private readonly state: State,
    private readonly runtime: Runtime,
    private readonly log: Logger,
  ) {
    if (!existsSync(file)) return;
    try {
      const a = JSON.parse(readFileSync(file, 'utf8'));
      if (Array.isArray(a)) this.list = a.filter((x) => x && typeof x.name === 'string' && typeof x.networkId === 'string' && typeof x.ifname === 'string');
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'ignoring unreadable attachments.json');
    }
  }

  /** A network with attachments is in use. */
  usesNetwork(id: string): boolean {
    return this.list.some((a) => a.networkId === id);
  }

  /** Keep only what is live, and write the file. */
  save(): void {
    this.list = this.list.filter((a) => this.runtime.attachments.has(a.name));
    writeJsonAtomic(this.file, this.list);
  }

  /** Bring every stored attachment back (on daemon start). */
  restore(): void {
    for (const a of [...this.list]) {
      try {
        this.runtime.attachDevice(a.name, a.networkId, specOf(a));
        this.log.info({ attachment: a.name, tap: a.ifname }, 'attachment restored');
      } catch (e) {
        this.log.error({ attachment: a.name, err: (e as Error).message }, 'could not restore attachment');
      }
    }
  }

  /** `usernet attach`: checks everything first, so an error changes nothing. */
  async attach(name: string, networkRef: string, spec: AttachSpec): Promise<Attachment> {
    if (!ATTACHMENT_NAME.test(name)) throw new Error(`invalid attachment name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (this.list.some((a) => a.name === name)) throw new HttpError(409, `attachment name ${name} is already in use`);
    if (spec.kind === 'tap' || spec.kind === 'iface') {
      if (!IFNAME.test(spec.ifname)) throw new Error(`invalid interface name (${spec.ifname}): 1 to 15 of [a-zA-Z0-9_.-]`);
    } else {
      if (!isAbsolute(spec.path) || spec.path.length > 100) throw new Error(`invalid socket path (${spec.path}): an absolute path of at most 100 bytes`);
      if (!existsSync(dirname(spec.path))) throw new Error(`invalid socket path (${spec.path}): ${dirname(spec.path)} does not exist`);
      if (existsSync(spec.path)) throw new HttpError(409, `${spec.path} already exists`);
      if (this.list.some((a) => a.ifname === spec.path)) throw new HttpError(409, `${spec.path} is used by another attachment`);
    }
    const n = this.state.findNetwork(networkRef);
    if ((n.driver !== 'bridge' && n.driver !== 'overlay') || !this.runtime.networks.has(n.id)) {
      throw new Error(`network ${n.name} is a ${n.driver} network: attach works on bridge and overlay networks`);
    }
    if (spec.kind === 'tap' && (await linkExists(spec.ifname))) throw new HttpError(409, `interface ${spec.ifname} already exists in the daemon's namespace`);
    if (spec.kind === 'iface' && !(await linkExists(spec.ifname))) throw new Error(`interface ${spec.ifname} does not exist in the daemon's namespace`);
    if (spec.kind === 'iface' && this.list.some((a) => a.kind === 'iface' && a.ifname === spec.ifname)) throw new HttpError(409, `interface ${spec.ifname} is used by another attachment`);
    const real = this.runtime.attachDevice(name, n.id, spec);
    const a: Attachment = { name, networkId: n.id, kind: spec.kind, ifname: real, created: new Date().toISOString() };
    this.list.push(a);
    this.log.info({ attachment: name, network: n.name, tap: real }, 'attached');
    return a;
  }

  detach(name: string): Attachment {
    const a = this.list.find((x) => x.name === name);
    if (!a) throw new HttpError(404, `No such attachment: ${name}`);
    this.runtime.detachDevice(name);
    this.list = this.list.filter((x) => x !== a);
    return a;
  }

  view(a: Attachment) {
    const dev = this.runtime.attachments.get(a.name)?.dev;
    const connected = dev && 'connected' in dev ? dev.connected : undefined;
    return {
      Name: a.name,
      Network: this.state.networkById(a.networkId)?.name ?? a.networkId,
      NetworkID: a.networkId,
      Kind: a.kind ?? 'tap',
      Interface: a.ifname,
      ...(connected !== undefined ? { Connected: connected } : {}),
      Created: a.created,
    };
  }
}
