/**
 * The daemon API's request shapes: one zod schema per request body and
 * query string, with bounds on every string, record and list, so a bad
 * request is refused (400, `invalid request: PATH: what is wrong`) before it
 * touches the state. The semantic rules (name patterns, addresses, drivers,
 * options) stay in the model (model.ts, records.ts), which gives Docker's
 * messages; here are types and sizes. The api-*.ts functions take the
 * inferred types.
 */
import { z } from 'zod';
import type { ComposePlan } from './compose.js';
import { HttpError } from './http-error.js';
import { NAME_MAX } from './model.js';

export { NAME_MAX };

/** Largest request body (bytes): 413 beyond it, before the rest is read. */
export const MAX_BODY = 1 << 20;
/** A network or container reference: a name, a full id (64 hex) or a prefix, optionally `/name`. */
export const REF_MAX = 128;
/** DNS names (aliases, RFC 1123): 253 characters. */
export const DNS_NAME_MAX = 253;
export const LIST_MAX = 64;
export const RECORD_MAX = 128;
export const KEY_MAX = 256;
export const VALUE_MAX = 4096;
export const PORTS_MAX = 256;

const str = (max: number) => z.string().max(max);
const nonEmpty = (max: number) => z.string().min(1).max(max);
/** An address, CIDR or MAC (checked by the model); null and '' mean "not given". */
const addr = str(64).nullish();

/** Options and labels: string keys and values, bounded in size and count. */
export const StringRecord = z
  .record(str(KEY_MAX), str(VALUE_MAX))
  .refine((r) => Object.keys(r).length <= RECORD_MAX, { message: `more than ${RECORD_MAX} entries` });

const Aliases = z.array(str(DNS_NAME_MAX)).max(LIST_MAX);

/** `POST /networks` (`usernet network create`) */
export const NetworkCreate = z.strictObject({
  name: nonEmpty(NAME_MAX),
  driver: str(32).optional(),
  subnet: addr,
  gateway: addr,
  ipRange: addr,
  internal: z.boolean().optional(),
  attachable: z.boolean().optional(),
  options: StringRecord.optional(),
  labels: StringRecord.optional(),
});
export type NetworkCreate = z.infer<typeof NetworkCreate>;

/** `POST /networks/:x/connect` */
export const NetworkConnect = z.strictObject({
  container: nonEmpty(REF_MAX),
  ip: addr,
  aliases: Aliases.optional(),
});
export type NetworkConnect = z.infer<typeof NetworkConnect>;

/** `POST /networks/:x/disconnect` (`force` accepted, as Docker's API has it) */
export const NetworkDisconnect = z.strictObject({
  container: nonEmpty(REF_MAX),
  force: z.boolean().optional(),
});
export type NetworkDisconnect = z.infer<typeof NetworkDisconnect>;

/** `POST /containers` (`usernet run`) */
export const ContainerCreate = z.strictObject({
  name: nonEmpty(NAME_MAX),
  /** bridge, host, none, a user network, or container:REF */
  network: str(REF_MAX + 'container:'.length).optional(),
  ip: addr,
  aliases: Aliases.optional(),
  hostname: str(DNS_NAME_MAX).nullish(),
  mac: addr,
  /** `-p` specs, parsed by the model */
  publish: z.array(str(128)).max(PORTS_MAX).optional(),
});
export type ContainerCreate = z.infer<typeof ContainerCreate>;

/** `POST /attachments` (`usernet attach`): exactly one of tap, qemuStream, qemuDgram, iface (checked by attach()). */
export const AttachmentCreate = z.strictObject({
  name: nonEmpty(NAME_MAX),
  network: nonEmpty(REF_MAX),
  tap: str(64).optional(),
  iface: str(64).optional(),
  qemuStream: str(1024).optional(),
  qemuDgram: str(1024).optional(),
});
export type AttachmentCreate = z.infer<typeof AttachmentCreate>;

// ---------------------------------------------------------------- compose

/** Compose's project name rule (compose-ports.ts PROJECT). */
const Project = nonEmpty(NAME_MAX).regex(/^[a-z0-9][a-z0-9_-]*$/, 'must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number');

const PortBinding = z.strictObject({
  hostIp: str(64).optional(),
  hostPort: z.int().min(0).max(65535).optional(),
  containerPort: z.int().min(1).max(65535),
  proto: z.enum(['tcp', 'udp']).optional(),
});

/** a planned network: the `POST /networks` body, plus its scope */
const PlanNetworkSpec = NetworkCreate.extend({ scope: z.enum(['local', 'swarm']).optional() });

const PlannedNetwork = z.discriminatedUnion('external', [
  z.strictObject({ key: nonEmpty(KEY_MAX), name: nonEmpty(NAME_MAX), external: z.literal(false), spec: PlanNetworkSpec }),
  z.strictObject({ key: nonEmpty(KEY_MAX), name: nonEmpty(NAME_MAX), external: z.literal(true), spec: z.null() }),
]);

const PlannedAttachment = z.strictObject({
  network: nonEmpty(REF_MAX),
  ip: str(64).optional(),
  aliases: Aliases,
});

const PlannedContainer = z
  .strictObject({
    service: nonEmpty(DNS_NAME_MAX),
    name: nonEmpty(NAME_MAX),
    hostname: str(DNS_NAME_MAX).optional(),
    networkMode: z.union([z.enum(['default', 'host', 'none']), z.strictObject({ sharesWith: nonEmpty(DNS_NAME_MAX) })]),
    attachments: z.array(PlannedAttachment).max(LIST_MAX),
    ports: z.array(PortBinding).max(PORTS_MAX),
    labels: StringRecord,
  })
  .superRefine((c, ctx) => {
    // containerSpec(): 'default' is created on attachments[0]; the other modes have none
    if (c.networkMode === 'default' && c.attachments.length === 0) ctx.addIssue({ code: 'custom', path: ['attachments'], message: 'a container on networks needs at least one attachment' });
    if (c.networkMode !== 'default' && c.attachments.length > 0) ctx.addIssue({ code: 'custom', path: ['attachments'], message: 'only network mode "default" has attachments' });
  });

/** What compose.ts planCompose() builds on the CLI side. */
export const ComposePlanSchema = z.strictObject({
  project: Project,
  file: str(4096),
  networks: z.array(PlannedNetwork).max(256),
  containers: z.array(PlannedContainer).max(1024),
  warnings: z.array(str(4096)).max(1024),
}) satisfies z.ZodType<ComposePlan>;

/** `POST /compose/up` (`usernet up`) */
export const ComposeUp = z.strictObject({ plan: ComposePlanSchema });
export type ComposeUp = z.infer<typeof ComposeUp>;

/** `POST /compose/down` (`usernet down`): the plan, when given, names the containers of a project without labels. */
export const ComposeDown = z.strictObject({ project: Project, plan: ComposePlanSchema.optional() });
export type ComposeDown = z.infer<typeof ComposeDown>;

// ------------------------------------------------------------ query strings

/** `GET /networks`, `/containers`, `/stats`: `?format=table` for the CLI's tables. */
export const ListQuery = z.object({ format: z.enum(['table', 'json']).optional() });
export type ListQuery = z.infer<typeof ListQuery>;

/** `GET /capture?target=NET|CTR&count=N` (0 = until the client hangs up) */
export const CaptureQuery = z.object({
  target: nonEmpty(REF_MAX).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters'),
  count: z
    .string()
    .regex(/^[0-9]{1,9}$/, 'expected a whole number of frames (at most 9 digits)')
    .transform(Number)
    .optional(),
});
export type CaptureQuery = z.infer<typeof CaptureQuery>;

// ------------------------------------------------------------------ checking

type Issue = z.core.$ZodIssue;

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) {
    const name = String(k).length > 40 ? `${String(k).slice(0, 40)}…` : String(k);
    out += typeof k === 'number' ? `[${k}]` : out === '' ? name : `.${name}`;
  }
  return out;
}

/** One issue as [path, message]; a union reports the branch that got furthest. */
function describe(iss: Issue, input: unknown): [PropertyKey[], string] {
  const at = (path: readonly PropertyKey[]): unknown => {
    let v = input;
    for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
    return v;
  };
  switch (iss.code) {
    case 'invalid_type': {
      const v = at(iss.path);
      return [iss.path, v === undefined ? 'is required' : `expected ${iss.expected}, received ${kindOf(v)}`];
    }
    case 'too_big':
      return [iss.path, iss.origin === 'string' ? `longer than ${iss.maximum} characters` : iss.origin === 'array' ? `more than ${iss.maximum} items` : `must be at most ${iss.maximum}`];
    case 'too_small':
      return [iss.path, iss.origin === 'string' && iss.minimum === 1 ? 'must not be empty' : iss.origin === 'array' ? `fewer than ${iss.minimum} items` : `must be at least ${iss.minimum}`];
    case 'invalid_key': {
      // a record's key: the key's own problem, said of the key
      const inner = iss.issues[0];
      return [iss.path, inner ? `key ${describe(inner, iss.path.at(-1))[1]}` : 'invalid key'];
    }
    case 'unrecognized_keys':
      return [[...iss.path, iss.keys[0]!], 'unknown field'];
    case 'invalid_union': {
      // the branch whose first issue went deepest is the one the sender meant
      const best = iss.errors
        .map((e) => e[0])
        .filter((e): e is Issue => e !== undefined)
        .sort((a, b) => b.path.length - a.path.length)[0];
      if (best && best.path.length > 0) {
        const [p, m] = describe(best, at(iss.path));
        return [[...iss.path, ...p], m];
      }
      return [iss.path, `invalid value (received ${kindOf(at(iss.path))})`];
    }
    default:
      return [iss.path, iss.message.replace(/^Invalid (input|option): /, '')];
  }
}

/** The first problem of a failed parse, as one line: `PATH: message` (no path for the whole value). */
export function formatIssue(issues: readonly Issue[], input: unknown): string {
  const [path, msg] = describe(issues[0]!, input);
  const p = formatPath(path);
  return p ? `${p}: ${msg}` : msg;
}

/** Checks a request body or query; throws HttpError 400 `invalid request: PATH: …`. */
export function parseRequest<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new HttpError(400, `invalid request: ${formatIssue(r.error.issues, input)}`);
}

/** A query string as an object (the last value of a repeated key), checked against `schema`. */
export function parseQuery<S extends z.ZodType>(schema: S, url: URL): z.output<S> {
  return parseRequest(schema, Object.fromEntries(url.searchParams));
}
