import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AttachmentCreate,
  CaptureQuery,
  ComposeDown,
  ComposeUp,
  ContainerCreate,
  ListQuery,
  NAME_MAX,
  NetworkConnect,
  NetworkCreate,
  NetworkDisconnect,
  parseQuery,
  parseRequest,
} from './api-schema.js';
import { planCompose } from './compose.js';
import { HttpError } from './http-error.js';
import { State } from './model.js';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures/compose');

/** The message parseRequest rejects `input` with (fails the test when it is accepted). */
function rejected(schema: Parameters<typeof parseRequest>[0], input: unknown): string {
  try {
    parseRequest(schema, input);
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).status).toBe(400);
    return (e as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(input)}`);
}

const CLI_RUN = { name: 'web', network: 'lan', ip: '10.0.0.5', aliases: ['www', 'front'], hostname: 'web1', mac: '02:42:0a:00:00:05', publish: ['8080:80', '127.0.0.1::53/udp'] };

describe('API request schemas accept what the CLI sends', () => {
  it('network create, connect, disconnect, run, attach (the CLI shapes, JSON round-tripped)', () => {
    const rt = (v: unknown) => JSON.parse(JSON.stringify(v));
    const create = rt({ name: 'lan', driver: 'bridge', subnet: '10.0.0.0/24', gateway: undefined, ipRange: undefined, internal: false, attachable: false, options: { 'com.docker.network.driver.mtu': '1400' }, labels: { a: '' } });
    expect(parseRequest(NetworkCreate, create)).toEqual(create);
    expect(parseRequest(NetworkConnect, rt({ container: 'web', ip: undefined, aliases: [] }))).toEqual({ container: 'web', aliases: [] });
    expect(parseRequest(NetworkDisconnect, { container: 'web' })).toEqual({ container: 'web' });
    expect(parseRequest(ContainerCreate, CLI_RUN)).toEqual(CLI_RUN);
    expect(parseRequest(ContainerCreate, { name: 'x1', network: 'container:web' }).network).toBe('container:web');
    expect(parseRequest(AttachmentCreate, rt({ name: 'vm1', network: 'lan', tap: 'tapvm1', qemuStream: undefined }))).toEqual({ name: 'vm1', network: 'lan', tap: 'tapvm1' });
  });

  it('compose plans built by planCompose (every fixture), for up and down', () => {
    for (const f of ['default.yml', 'frontend-backend.yml', 'external.yml']) {
      const plan = JSON.parse(JSON.stringify(planCompose(readFileSync(join(FIXTURES, f), 'utf8'), f, 'demo')));
      expect(parseRequest(ComposeUp, { plan }).plan).toEqual(plan);
      expect(parseRequest(ComposeDown, { project: 'demo', plan }).project).toBe('demo');
    }
    expect(parseRequest(ComposeDown, { project: 'demo' })).toEqual({ project: 'demo' });
  });

  it('query strings', () => {
    expect(parseQuery(ListQuery, new URL('http://x/networks?format=table'))).toEqual({ format: 'table' });
    expect(parseQuery(ListQuery, new URL('http://x/networks'))).toEqual({});
    expect(parseQuery(CaptureQuery, new URL('http://x/capture?target=lan&count=5'))).toEqual({ target: 'lan', count: 5 });
    expect(parseQuery(CaptureQuery, new URL('http://x/capture?target=lan'))).toEqual({ target: 'lan' });
  });
});

describe('API request schemas refuse wrong types with the field path', () => {
  it('says which field is wrong and what it got', () => {
    expect(rejected(NetworkConnect, { container: 'web', aliases: 'abc' })).toBe('invalid request: aliases: expected array, received string');
    expect(rejected(NetworkConnect, { container: 5 })).toBe('invalid request: container: expected string, received number');
    expect(rejected(ContainerCreate, { name: 'web', network: 7 })).toBe('invalid request: network: expected string, received number');
    expect(rejected(ContainerCreate, { name: 'web', publish: { a: 1 } })).toBe('invalid request: publish: expected array, received object');
    expect(rejected(ContainerCreate, { name: 'web', publish: ['80', 81] })).toBe('invalid request: publish[1]: expected string, received number');
    expect(rejected(ContainerCreate, { network: 'lan' })).toBe('invalid request: name: is required');
    expect(rejected(ContainerCreate, { name: '' })).toBe('invalid request: name: must not be empty');
    expect(rejected(ContainerCreate, { name: 'web', bogus: 1 })).toBe('invalid request: bogus: unknown field');
    expect(rejected(NetworkCreate, { name: 'lan', internal: 'yes' })).toBe('invalid request: internal: expected boolean, received string');
    expect(rejected(NetworkCreate, { name: 'lan', labels: { a: 1 } })).toBe('invalid request: labels.a: expected string, received number');
    expect(rejected(NetworkCreate, { name: 'lan', options: ['a=b'] })).toBe('invalid request: options: expected record, received array');
    expect(rejected(NetworkCreate, [])).toBe('invalid request: expected object, received array');
    expect(rejected(NetworkCreate, null)).toBe('invalid request: expected object, received null');
    expect(rejected(AttachmentCreate, { name: 'vm', network: 'lan', tap: true })).toBe('invalid request: tap: expected string, received boolean');
  });

  it('bounds names, labels, aliases and lists', () => {
    expect(rejected(NetworkCreate, { name: 'n'.repeat(10_000) })).toBe(`invalid request: name: longer than ${NAME_MAX} characters`);
    expect(parseRequest(NetworkCreate, { name: 'n'.repeat(NAME_MAX) }).name).toHaveLength(NAME_MAX);
    expect(rejected(NetworkCreate, { name: 'lan', labels: { a: 'v'.repeat(5000) } })).toBe('invalid request: labels.a: longer than 4096 characters');
    expect(rejected(NetworkCreate, { name: 'lan', labels: { ['k'.repeat(300)]: 'v' } })).toBe(`invalid request: labels.${'k'.repeat(40)}…: key longer than 256 characters`);
    const many = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v']));
    expect(rejected(NetworkCreate, { name: 'lan', labels: many })).toBe('invalid request: labels: more than 128 entries');
    expect(rejected(NetworkConnect, { container: 'web', aliases: Array(65).fill('a') })).toBe('invalid request: aliases: more than 64 items');
    expect(rejected(NetworkConnect, { container: 'web', aliases: ['a'.repeat(254)] })).toBe('invalid request: aliases[0]: longer than 253 characters');
    expect(rejected(ContainerCreate, { name: 'web', hostname: 'h'.repeat(254) })).toBe('invalid request: hostname: longer than 253 characters');
    expect(rejected(ContainerCreate, { name: 'web', publish: Array(257).fill('80') })).toBe('invalid request: publish: more than 256 items');
  });

  it('compose plans: wrong types, missing parts and inconsistent modes', () => {
    const plan = JSON.parse(JSON.stringify(planCompose(readFileSync(join(FIXTURES, 'frontend-backend.yml'), 'utf8'), 'f.yml', 'demo')));
    expect(rejected(ComposeUp, {})).toBe('invalid request: plan: is required');
    expect(rejected(ComposeUp, { plan: 'x' })).toBe('invalid request: plan: expected object, received string');
    expect(rejected(ComposeUp, { plan: { ...plan, containers: undefined } })).toBe('invalid request: plan.containers: is required');
    const noAtt = structuredClone(plan);
    noAtt.containers[0].attachments = [];
    expect(rejected(ComposeUp, { plan: noAtt })).toBe('invalid request: plan.containers[0].attachments: a container on networks needs at least one attachment');
    const badMode = structuredClone(plan);
    badMode.containers[1].networkMode = { sharesWith: 3 };
    expect(rejected(ComposeUp, { plan: badMode })).toBe('invalid request: plan.containers[1].networkMode.sharesWith: expected string, received number');
    const badPort = structuredClone(plan);
    badPort.containers[0].ports = [{ containerPort: 70000 }];
    expect(rejected(ComposeUp, { plan: badPort })).toBe('invalid request: plan.containers[0].ports[0].containerPort: must be at most 65535');
    const badNet = structuredClone(plan);
    badNet.networks[0].spec = null;
    expect(rejected(ComposeUp, { plan: badNet })).toBe('invalid request: plan.networks[0].spec: expected object, received null');
    expect(rejected(ComposeDown, { project: 'Bad Name' })).toMatch(/^invalid request: project: must consist only of lowercase/);
    expect(rejected(ComposeDown, { project: '' })).toBe('invalid request: project: must not be empty');
  });

  it('query strings', () => {
    const q = (s: string) => {
      try {
        parseQuery(CaptureQuery, new URL(`http://x/capture?${s}`));
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(q('count=5')).toBe('invalid request: target: is required');
    expect(q('target=q%0Ab')).toBe('invalid request: target: must not contain control characters');
    expect(q('target=lan&count=-1')).toBe('invalid request: count: expected a whole number of frames (at most 9 digits)');
    expect(q('target=lan&count=1e3')).toMatch(/^invalid request: count: /);
    expect(() => parseQuery(ListQuery, new URL('http://x/networks?format=yaml'))).toThrow(/^invalid request: format: expected one of "table"\|"json"$/);
  });
});

describe('the model bounds names too (what compose plans and the cluster hand it)', () => {
  it('refuses network and container names longer than NAME_MAX, without echoing them whole', () => {
    const st = new State();
    expect(() => st.createNetwork({ name: 'n'.repeat(NAME_MAX + 1) })).toThrow(`invalid network name "${'n'.repeat(24)}…": longer than ${NAME_MAX} characters`);
    expect(() => st.createContainer({ name: 'c'.repeat(10_000) })).toThrow(`invalid container name "${'c'.repeat(24)}…": longer than ${NAME_MAX} characters`);
    expect(st.createNetwork({ name: 'n'.repeat(NAME_MAX) }).name).toHaveLength(NAME_MAX);
    expect(st.createContainer({ name: 'c'.repeat(NAME_MAX) }).name).toHaveLength(NAME_MAX);
  });
});
