/**
 * The daemon's attachment API (`usernet attach` / `detach`): TAP devices,
 * QEMU sockets and host interfaces on a network. Mutating operations run
 * inside Daemon.serial() (the dispatch in daemon.ts wraps them).
 */
import type { AttachmentCreate } from './api-schema.js';
import type { Daemon } from './daemon.js';
import type { AttachSpec } from './runtime.js';

/** `GET attachments` */
export function listAttachments(d: Daemon): unknown {
  return d.attachments.list.map((a) => d.attachments.view(a));
}

/** `POST attachments`: exactly one of tap, qemuStream, qemuDgram, iface. */
export async function attach(d: Daemon, b: AttachmentCreate): Promise<unknown> {
  const given = (['tap', 'qemuStream', 'qemuDgram', 'iface'] as const).filter((k) => typeof b[k] === 'string' && b[k] !== '');
  if (given.length !== 1) throw new Error('give exactly one of --tap IFNAME, --qemu-stream PATH, --qemu-dgram PATH, --iface IFNAME');
  const k = given[0];
  const v = b[k]!;
  const spec: AttachSpec =
    k === 'tap' ? { kind: 'tap', ifname: v } : k === 'iface' ? { kind: 'iface', ifname: v } : k === 'qemuStream' ? { kind: 'qemu-stream', path: v } : { kind: 'qemu-dgram', path: v };
  const a = await d.attachments.attach(b.name, b.network, spec);
  d.persist();
  return d.attachments.view(a);
}

/** `DELETE attachments/:x` */
export async function detach(d: Daemon, ref: string): Promise<{ detached: string }> {
  const a = d.attachments.detach(ref);
  d.persist();
  return { detached: a.name };
}
