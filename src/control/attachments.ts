/**
 * `usernet attach`: TAP endpoints on bridge networks (what is behind one
 * configures itself by DHCP), kept in attachments.json beside state.json
 * and brought back on start as fresh TAPs in the daemon's namespace.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { HttpError } from './http-error.js';
import type { State } from './model.js';
import { linkExists } from './netns.js';
import type { Runtime } from './runtime.js';

export interface Attachment {
  name: string;
  networkId: string;
  ifname: string;
  created: string;
}

const ATTACHMENT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** a Linux interface name: at most 15 bytes, no '/', ':', '%' or white space */
const IFNAME = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,14}$/;

/** Write JSON to `file` atomically (temp file, then rename), root-only. */
export function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = file + '.tmp';
  writeFileSync(tmp, JSON.stringify(data, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
}

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
        this.runtime.attachTap(a.name, a.networkId, a.ifname);
        this.log.info({ attachment: a.name, tap: a.ifname }, 'attachment restored');
      } catch (e) {
        this.log.error({ attachment: a.name, err: (e as Error).message }, 'could not restore attachment');
      }
    }
  }

  /** `usernet attach`: checks everything first, so an error changes nothing. */
  async attach(name: string, networkRef: string, ifname: string): Promise<Attachment> {
    if (!ATTACHMENT_NAME.test(name)) throw new Error(`invalid attachment name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (this.list.some((a) => a.name === name)) throw new HttpError(409, `attachment name ${name} is already in use`);
    if (!IFNAME.test(ifname)) throw new Error(`invalid interface name (${ifname}): 1 to 15 of [a-zA-Z0-9_.-]`);
    const n = this.state.findNetwork(networkRef);
    if (n.driver !== 'bridge' || !this.runtime.networks.has(n.id)) throw new Error(`network ${n.name} is not a bridge network`);
    if (await linkExists(ifname)) throw new HttpError(409, `interface ${ifname} already exists in the daemon's namespace`);
    const real = this.runtime.attachTap(name, n.id, ifname);
    const a: Attachment = { name, networkId: n.id, ifname: real, created: new Date().toISOString() };
    this.list.push(a);
    this.log.info({ attachment: name, network: n.name, tap: real }, 'attached');
    return a;
  }

  detach(name: string): Attachment {
    const a = this.list.find((x) => x.name === name);
    if (!a) throw new HttpError(404, `No such attachment: ${name}`);
    this.runtime.detachTap(name);
    this.list = this.list.filter((x) => x !== a);
    return a;
  }

  view(a: Attachment) {
    return { Name: a.name, Network: this.state.networkById(a.networkId)?.name ?? a.networkId, NetworkID: a.networkId, Interface: a.ifname, Created: a.created };
  }
}
