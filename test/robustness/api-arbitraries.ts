/**
 * fast-check arbitraries for the daemon's API: requests as (method, target,
 * body) — mostly the real endpoints with bodies that pass the schema and
 * then have fields replaced by random JSON values, plus random methods,
 * paths with random percent-escapes and query strings, truncated JSON, JSON
 * of any shape and bodies that are not JSON. Every generated string that
 * could name something starts with "q": never the lab's own objects (which
 * the scenario names otherwise) nor an id prefix (hex).
 */
import fc from 'fast-check';

/** [method, request target, body (undefined: none)] */
export type ApiRequest = [string, string, string | undefined];

/** Requests against the API; `plan` is a valid compose plan (project "qfz"). */
export function apiRequests(plan: unknown): fc.Arbitrary<ApiRequest> {
  // random strings never name the lab's objects (aa, bb, lan) nor an id prefix (hex): they start with "q"
  const qstr = fc.oneof(fc.constant(''), fc.string({ maxLength: 12 }).map((s) => 'q' + s));
  const urlChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=:@'.split(''));
  const escape = fc.tuple(fc.constantFrom('', '0', 'f', 'z', 'E', '%'), fc.constantFrom('', '0', 'a', 'z', 'F')).map(([a, b]) => `%${a}${b}`);
  const segment = fc.oneof(
    fc.constantFrom('networks', 'containers', 'compose', 'up', 'down', 'connect', 'disconnect', 'attachments', 'capture', 'info', 'stats', 'conntrack', 'prune', 'port'),
    fc.array(fc.oneof(urlChar, escape), { minLength: 1, maxLength: 8 }).map((cs) => 'q' + cs.join('')),
  );
  const query = fc.oneof(
    fc.constant(''),
    fc.constantFrom('?format=table', '?format=x', '?target=lan&count=%zz', '?count=1e9', '?target=q&count=3', '?&&=&'),
    fc.array(fc.oneof(urlChar, escape), { maxLength: 10 }).map((cs) => '?' + cs.join('')),
  );
  const target = fc.tuple(fc.array(segment, { minLength: 0, maxLength: 4 }), query, fc.constantFrom('/', '//', 'http://x/', '/./', '/../'))
    .map(([segs, q, lead]) => lead + segs.join('/') + q);
  const ref = fc.oneof(qstr.map((x) => encodeURIComponent(x) || 'q'), segment.filter((x) => x.startsWith('q')));
  // values of every type, and some that pass the schema so the model's checks run too
  const value: fc.Arbitrary<unknown> = fc.oneof(
    qstr,
    fc.constantFrom('lan', 'bridge', 'host', 'none', 'overlay', 'macvlan', '10.213.7.200', '10.213.50.0/24', '10.213.50.1', '02:42:0a:d5:07:c8', 'qfz', '/tmp/q'),
    fc.constantFrom(['8080:80'], ['80/udp', 'q'], ['qa', 'qb'], { 'com.docker.network.driver.mtu': '1400' }, { parent: 'q0' }, plan),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(qstr, { maxLength: 3 }),
    fc.dictionary(qstr, qstr, { maxKeys: 3 }),
    fc.dictionary(qstr, fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 })), { maxKeys: 3 }),
  );
  const fields = (names: string[]) => fc.dictionary(fc.constantFrom(...names, 'q'), value, { maxKeys: 2 });
  // requests that pass the schema (names start with "q": never the lab's own objects), some fields then replaced by random values
  const qname = fc.stringMatching(/^q[a-z0-9]{0,5}$/);
  const valid: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
    '/networks': fc.record(
      { name: qname, driver: fc.constantFrom('bridge', 'bridge', 'overlay', 'macvlan', 'q'), subnet: fc.constantFrom('10.213.50.0/24', '10.213.51.0/24', '10.213.7.0/24', 'q'), internal: fc.boolean(), labels: fc.dictionary(qname, qstr, { maxKeys: 2 }) },
      { requiredKeys: ['name'] },
    ),
    connect: fc.record({ container: qname, ip: fc.constantFrom('10.213.7.200', '10.213.7.1', 'q'), aliases: fc.array(qname, { maxLength: 2 }) }, { requiredKeys: ['container'] }),
    disconnect: fc.record({ container: qname, force: fc.boolean() }, { requiredKeys: ['container'] }),
    '/containers': fc.record(
      { name: qname, network: fc.constantFrom('lan', 'lan', 'bridge', 'none', 'host', 'q1'), ip: fc.constantFrom('10.213.7.201', '10.213.7.300', 'q'), aliases: fc.array(qname, { maxLength: 2 }), hostname: qname, mac: fc.constantFrom('02:42:0a:d5:07:c9', 'q'), publish: fc.constantFrom([], ['8080:80'], ['80/udp'], ['q']) },
      { requiredKeys: ['name'] },
    ),
    '/attachments': fc.record({ name: qname, network: fc.constantFrom('lan', 'bridge', 'q'), tap: qname, iface: fc.constantFrom('lo', 'q') }, { requiredKeys: ['name', 'network'] }),
    '/compose/up': fc.record({ plan: fc.constant(plan) }),
    '/compose/down': fc.record({ project: fc.constantFrom('qfz', 'q') }),
  };
  const validBody = (key: string, names: string[]) =>
    fc.tuple(valid[key]!, fc.option(fields(names), { freq: 2 })).map(([a, b]) => JSON.stringify({ ...a, ...(b ?? {}) }));
  const anyFields = fields(['name', 'network', 'container', 'ip', 'aliases', 'hostname', 'mac', 'publish', 'driver', 'subnet', 'labels', 'tap', 'plan', 'project']);
  /** a body: fields of the endpoint (JSON), truncated JSON, any JSON value, or no JSON at all */
  const bodyOf = (names: string[], key?: string) =>
    fc.oneof(
      { weight: 4, arbitrary: key ? validBody(key, names) : fields(names).map((o) => JSON.stringify(o)) },
      { weight: 1, arbitrary: fields(names).map((o) => JSON.stringify(o)) },
      { weight: 1, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: anyFields.chain((o) => fc.nat(Math.max(0, JSON.stringify(o).length - 1)).map((n) => JSON.stringify(o).slice(0, n))) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
    );
  const method = fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS');
  const api = (m: string, path: fc.Arbitrary<string>, names: string[] = [], key?: string) => fc.tuple(fc.constant(m), path, bodyOf(names, key));
  const at = (f: (r: string) => string) => ref.map(f);
  const onNet = (f: (r: string) => string) => fc.oneof(fc.constantFrom('lan', 'bridge', 'host', 'none'), ref).map(f);
  return fc.oneof(
    api('POST', fc.constant('/networks'), ['name', 'driver', 'subnet', 'gateway', 'ipRange', 'internal', 'attachable', 'options', 'labels'], '/networks'),
    api('POST', onNet((r) => `/networks/${r}/connect`), ['container', 'ip', 'aliases'], 'connect'),
    api('POST', onNet((r) => `/networks/${r}/disconnect`), ['container', 'force'], 'disconnect'),
    api('POST', fc.constant('/containers'), ['name', 'network', 'ip', 'aliases', 'hostname', 'mac', 'publish'], '/containers'),
    api('POST', fc.constant('/compose/up'), ['plan', 'project'], '/compose/up'),
    api('POST', fc.constant('/compose/down'), ['plan', 'project'], '/compose/down'),
    api('POST', fc.constant('/attachments'), ['name', 'network', 'tap', 'iface', 'qemuStream', 'qemuDgram'], '/attachments'),
    api('POST', fc.constant('/networks/prune')),
    api('DELETE', fc.oneof(at((r) => `/networks/${r}`), at((r) => `/containers/${r}`), at((r) => `/attachments/${r}`))),
    api('GET', fc.oneof(at((r) => `/networks/${r}`), at((r) => `/containers/${r}`), at((r) => `/containers/${r}/port`), query.map((q) => `/capture${q}`), query.map((q) => `/networks${q}`), query.map((q) => `/stats${q}`), fc.constantFrom('/info', '/conntrack', '/attachments', '/containers?format=table'))),
    fc.tuple(method, target, bodyOf(['name', 'container', 'plan'])),
  );
}

/** Content types: mostly JSON, some wrong, some missing. */
export const contentTypes = fc.constantFrom<string | null>('application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', null);
