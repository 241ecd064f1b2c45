/**
 * Helpers of the compose planner (compose.ts): the YAML reader, the project
 * name, the checked readers of YAML values, and `ports:`.
 *
 * `ports:` → PortBindingSpec[] goes through records.ts's `parsePublish`, so
 * a compose file accepts exactly what `usernet run -p` accepts.
 *
 * - Short syntax: a string (`"80"`, `"8080:80"`, `"8080:80/udp"`,
 *   `"127.0.0.1:8080:80"`, `"127.0.0.1::80"`) or an integer (`80`).
 * - Long syntax: `{ target, published?, host_ip?, protocol?, mode?, name?,
 *   app_protocol? }`; `mode`, `name` and `app_protocol` are accepted and
 *   ignored. It is turned into the short form and parsed the same way, so
 *   errors quote that form.
 * - Not supported (as with `-p`): port ranges and IPv6 host addresses.
 */
import { basename, dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { type PortBindingSpec, parsePublish } from './records.js';

/** Throws `FILE: PATH: MSG` (built by the planner). */
export type Fail = (path: string, msg: string) => never;
/** A YAML mapping as parsed here: string keys, file order. */
export type YMap = Map<string, unknown>;

const LONG_KEYS = ['target', 'published', 'host_ip', 'protocol', 'mode', 'name', 'app_protocol'];

/** `services.X.ports` (undefined/null: none). Each error names `ports[i]`. */
export function composePorts(v: unknown, at: string, fail: Fail): PortBindingSpec[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return fail(at, 'must be a list');
  return v.map((p, i) => composePort(p, `${at}[${i}]`, fail));
}

function composePort(p: unknown, at: string, fail: Fail): PortBindingSpec {
  let spec: string;
  if (typeof p === 'number') {
    if (!Number.isInteger(p)) return fail(at, `invalid port ${p}: must be an integer`);
    spec = String(p);
  } else if (typeof p === 'string') {
    spec = p;
  } else if (p instanceof Map) {
    spec = longSyntax(p as Map<string, unknown>, at, fail);
  } else {
    return fail(at, 'must be a string, a number or a mapping');
  }
  try {
    return parsePublish(spec);
  } catch (e) {
    return fail(at, (e as Error).message);
  }
}

function longSyntax(m: Map<string, unknown>, at: string, fail: Fail): string {
  for (const k of m.keys()) {
    if (!LONG_KEYS.includes(k) && !k.startsWith('x-')) fail(`${at}.${k}`, `unknown key (expected ${LONG_KEYS.join(', ')})`);
  }
  const scalar = (k: string, numbers: boolean): string | undefined => {
    const v = m.get(k);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string' || (numbers && typeof v === 'number')) return String(v);
    return fail(`${at}.${k}`, numbers ? 'must be a number or a string' : 'must be a string');
  };
  const target = scalar('target', true);
  if (target === undefined || target === '') return fail(`${at}.target`, 'is required');
  const published = scalar('published', true) ?? '';
  const hostIp = scalar('host_ip', false) ?? '';
  const proto = scalar('protocol', false);
  let s = published !== '' ? `${published}:${target}` : hostIp !== '' ? `:${target}` : target;
  if (hostIp !== '') s = `${hostIp}:${s}`;
  return proto === undefined ? s : `${s}/${proto}`;
}

/** Two bindings that cannot both be published (same proto and host port, overlapping address). */
export function portClash(a: PortBindingSpec, b: PortBindingSpec): boolean {
  const ha = a.hostPort ?? 0;
  if (ha === 0 || ha !== (b.hostPort ?? 0) || (a.proto ?? 'tcp') !== (b.proto ?? 'tcp')) return false;
  const ia = a.hostIp || '0.0.0.0';
  const ib = b.hostIp || '0.0.0.0';
  return ia === ib || ia === '0.0.0.0' || ib === '0.0.0.0';
}

/** `0.0.0.0:8080/tcp` */
export function describeHostPort(p: PortBindingSpec): string {
  return `${p.hostIp || '0.0.0.0'}:${p.hostPort ?? 0}/${p.proto ?? 'tcp'}`;
}

// ------------------------------------------------------ YAML and project name

export const PROJECT_NAME_RULE = 'must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number';
const PROJECT = /^[a-z0-9][a-z0-9_-]*$/;

/** Compose's normalisation of a directory name into a project name ('' if nothing is left). */
export function normaliseProjectName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_-]/g, '').replace(/^[_-]+/, '');
}

/** The project: `-p` (given), else top-level `name:`, else the file's directory, normalised. */
export function projectName(given: string | undefined, nameV: unknown, file: string, fail: Fail): string {
  if (given !== undefined && given !== '') {
    if (!PROJECT.test(given)) throw new Error(`invalid project name "${given}": ${PROJECT_NAME_RULE}`);
    return given;
  }
  const top = optStr(nameV, 'name', fail);
  if (top !== undefined) {
    if (!PROJECT.test(top)) fail('name', `invalid project name "${top}": ${PROJECT_NAME_RULE}`);
    return top;
  }
  const dir = basename(dirname(resolve(file)));
  const p = normaliseProjectName(dir);
  if (p === '') throw new Error(`${file}: cannot derive a project name from directory "${dir}": use -p NAME`);
  return p;
}

/** Parse YAML 1.2 (with `<<` merge keys) into Maps with string keys; throws `FILE:LINE:COL: …`. */
export function parseComposeYaml(text: string, file: string): unknown {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, merge: true });
  const e = doc.errors[0];
  if (e) {
    const { line, col } = lc.linePos(e.pos[0]);
    throw new Error(`${file}:${line}:${col}: ${e.message.split('\n')[0]}`);
  }
  try {
    return stringKeys(doc.toJS({ mapAsMap: true, maxAliasCount: 100 }));
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message.split('\n')[0]}`);
  }
}

function stringKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stringKeys);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [String(k), stringKeys(x)]));
  return v;
}

// ------------------------------------------------ value readers (YAML → checked JS)

export function ok(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}

export function show(v: unknown): string {
  return v instanceof Map ? 'a mapping' : Array.isArray(v) ? 'a list' : JSON.stringify(v);
}

export function asMap(v: unknown, at: string, fail: Fail): YMap {
  if (v === undefined || v === null) return new Map();
  if (!(v instanceof Map)) return fail(at, `must be a mapping, not ${show(v)}`);
  return v as YMap;
}

export function checkKeys(m: YMap, at: string, allowed: readonly string[], fail: Fail): void {
  for (const k of m.keys()) {
    if (!allowed.includes(k) && !k.startsWith('x-')) fail(at ? `${at}.${k}` : k, `unknown key (expected one of ${allowed.join(', ')})`);
  }
}

export function optStr(v: unknown, at: string, fail: Fail): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return fail(at, `must be a string, not ${show(v)}`);
  return v;
}

export function optBool(v: unknown, at: string, fail: Fail): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') return fail(at, `must be true or false, not ${show(v)}`);
  return v;
}

export function strList(v: unknown, at: string, fail: Fail): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return fail(at, `must be a list, not ${show(v)}`);
  return v.map((x, i) => optStr(x, `${at}[${i}]`, fail) ?? fail(`${at}[${i}]`, 'must be a string'));
}

/** Compose's list_or_dict: `{K: V}` (scalars, null = "") or `["K=V", …]`. */
export function dict(v: unknown, at: string, fail: Fail): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    v.forEach((s, i) => {
      const item = optStr(s, `${at}[${i}]`, fail) ?? '';
      const eq = item.indexOf('=');
      if (eq <= 0) fail(`${at}[${i}]`, `expected KEY=VALUE, not "${item}"`);
      out[item.slice(0, eq)] = item.slice(eq + 1);
    });
    return out;
  }
  for (const [k, x] of asMap(v, at, fail)) {
    if (x !== null && typeof x === 'object') fail(`${at}.${k}`, `must be a string, a number or a boolean, not ${show(x)}`);
    out[k] = x === null || x === undefined ? '' : String(x);
  }
  return out;
}

