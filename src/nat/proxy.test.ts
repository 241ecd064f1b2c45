// UserlandProxy in this process, on 127.0.0.1 only: echo servers on
// ephemeral ports, proxies in front of them, real sockets as clients.
import { describe, it, expect, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { UserlandProxy, type ProxySpec } from './proxy.js';

const LO = '127.0.0.1';

// Cleanup registry: everything made by a test is closed after it, pass or fail.
const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function listenTcp(onConn: (s: net.Socket) => void): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return new Promise((resolve) => server.listen(0, LO, () => resolve({ server, port: (server.address() as net.AddressInfo).port, sockets })));
}

/** TCP echo: everything back, and a FIN back after the client's FIN. */
function tcpEcho(): ReturnType<typeof listenTcp> {
  return listenTcp((s) => s.pipe(s));
}

async function udpEcho(): Promise<{ sock: dgram.Socket; port: number }> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (m, r) => sock.send(m, r.port, r.address));
  await new Promise<void>((r) => sock.bind(0, LO, () => r()));
  closers.push(() => new Promise<void>((r) => sock.close(() => r())));
  return { sock, port: sock.address().port };
}

async function proxy(spec: Omit<ProxySpec, 'hostIp' | 'hostPort' | 'targetIp'> & { hostPort?: number }, opts = {}): Promise<UserlandProxy> {
  const p = new UserlandProxy(undefined, opts);
  await p.start({ hostIp: LO, hostPort: 0, targetIp: LO, ...spec });
  closers.push(() => p.stop());
  return p;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: LO, port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
    closers.push(() => void s.destroy());
  });
}

/** Everything the socket sends until its FIN (or close). */
function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

function udpClient(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  closers.push(() => new Promise<void>((r) => s.close(() => r())));
  return new Promise((resolve) => s.bind(0, LO, () => resolve(s)));
}

/** Sends each datagram and waits for one reply to each, in order. */
async function udpRoundTrips(s: dgram.Socket, port: number, msgs: Buffer[]): Promise<Buffer[]> {
  const replies: Buffer[] = [];
  for (const m of msgs) {
    const reply = new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no UDP reply')), 2000);
      s.once('message', (d: Buffer) => {
        clearTimeout(t);
        resolve(d);
      });
    });
    s.send(m, port, LO);
    replies.push(await reply);
  }
  return replies;
}

async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return pred();
}

describe('UserlandProxy: TCP', () => {
  it('relays bytes both ways, byte-exact, including 1 MB, and carries the FIN over', async () => {
    const echo = await tcpEcho();
    const p = await proxy({ proto: 'tcp', targetPort: echo.port });
    expect(p.port).toBeGreaterThan(0);

    const small = await connect(p.port);
    const smallBack = readAll(small);
    small.end(Buffer.from('hello, proxy\n'));
    expect((await smallBack).toString()).toBe('hello, proxy\n');

    const big = randomBytes(1 << 20);
    const s = await connect(p.port);
    const back = readAll(s);
    s.end(big); // write everything, then half-close: the echo's FIN ends our read
    const got = await back;
    expect(got.length).toBe(big.length);
    expect(got.equals(big)).toBe(true);
    expect(p.stats.tcpConnections).toBe(2);
    // both relays wind down by themselves once both directions are done
    expect(await waitFor(() => p.active.tcpSockets === 0, 2000)).toBe(true);
    expect(p.stats.tcpErrors).toBe(0);
  });

  it('keeps the other direction open after the target half-closes', async () => {
    const received: Buffer[] = [];
    let serverSawEnd!: () => void;
    const ended = new Promise<void>((r) => (serverSawEnd = r));
    const target = await listenTcp((s) => {
      s.end('bye'); // the target is done talking at once ...
      s.on('data', (d: Buffer) => received.push(d)); // ... but keeps listening
      s.on('end', () => serverSawEnd());
    });
    const p = await proxy({ proto: 'tcp', targetPort: target.port });
    const s = await connect(p.port);
    const back = readAll(s);
    expect((await back).toString()).toBe('bye'); // FIN from the target reached us
    s.write('still ');
    s.end('talking');
    await ended;
    expect(Buffer.concat(received).toString()).toBe('still talking');
  });

  it('resets the client when the target refuses', async () => {
    // a port nothing listens on: bind one, note it, close it
    const tmp = await listenTcp(() => undefined);
    const dead = tmp.port;
    await new Promise<void>((r) => tmp.server.close(() => r()));
    const p = await proxy({ proto: 'tcp', targetPort: dead });
    const s = await connect(p.port);
    const outcome = await new Promise<string>((resolve) => {
      s.on('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
      s.on('end', () => resolve('end'));
      s.on('close', () => resolve('close'));
    });
    expect(outcome).toBe('ECONNRESET');
    expect(await waitFor(() => p.active.tcpSockets === 0, 2000)).toBe(true);
    expect(p.stats.tcpErrors).toBe(1);
  });

  it('a second proxy on a taken port fails with a clear one-line error', async () => {
    const echo = await tcpEcho();
    const p = await proxy({ proto: 'tcp', targetPort: echo.port });
    const q = new UserlandProxy();
    const err = await q.start({ proto: 'tcp', hostIp: LO, hostPort: p.port, targetIp: LO, targetPort: echo.port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`Bind for 127.0.0.1:${p.port} failed: port is already allocated`);
    expect((err as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    await q.stop(); // harmless on a proxy that never started
    // the first one still works
    const s = await connect(p.port);
    const back = readAll(s);
    s.end('ok');
    expect((await back).toString()).toBe('ok');
  });

  it('stop() closes live connections (both sides) and the listener', async () => {
    const echo = await tcpEcho();
    const p = await proxy({ proto: 'tcp', targetPort: echo.port });
    const s = await connect(p.port);
    s.write('ping');
    await new Promise<void>((r) => s.once('data', () => r()));
    expect(echo.sockets.size).toBe(1);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => undefined);
    await p.stop();
    await closed;
    expect(p.active.tcpSockets).toBe(0);
    expect(await waitFor(() => echo.sockets.size === 0, 2000)).toBe(true); // the upstream side is gone too
    const refused = await connect(p.port).catch((e: NodeJS.ErrnoException) => e.code);
    expect(refused).toBe('ECONNREFUSED');
  });
});

describe('UserlandProxy: UDP', () => {
  it('relays datagrams byte-exact, one flow per client, replies to the right client', async () => {
    const echo = await udpEcho();
    const p = await proxy({ proto: 'udp', targetPort: echo.port });
    const c1 = await udpClient();
    const c2 = await udpClient();
    const m1 = [Buffer.from('one'), randomBytes(1400), randomBytes(8000), Buffer.alloc(0)];
    const m2 = [Buffer.from('two'), randomBytes(60000)];
    const [r1, r2] = await Promise.all([udpRoundTrips(c1, p.port, m1), udpRoundTrips(c2, p.port, m2)]);
    expect(r1.map((b) => b.toString('hex'))).toEqual(m1.map((b) => b.toString('hex')));
    expect(r2.map((b) => b.toString('hex'))).toEqual(m2.map((b) => b.toString('hex')));
    expect(p.active.udpFlows).toBe(2);
    expect(p.stats.udpFlows).toBe(2);
  });

  it('closes idle flows after the timeout; a later datagram opens a new one', async () => {
    const echo = await udpEcho();
    const p = await proxy({ proto: 'udp', targetPort: echo.port }, { udpIdleMs: 150 });
    const c = await udpClient();
    await udpRoundTrips(c, p.port, [Buffer.from('a')]);
    expect(p.active.udpFlows).toBe(1);
    expect(await waitFor(() => p.active.udpFlows === 0, 2000)).toBe(true);
    expect((await udpRoundTrips(c, p.port, [Buffer.from('b')]))[0].toString()).toBe('b');
    expect(p.stats.udpFlows).toBe(2);
  });

  it('a taken port fails with the clear error; stop() frees the port and the flows', async () => {
    const echo = await udpEcho();
    const p = await proxy({ proto: 'udp', targetPort: echo.port });
    const q = new UserlandProxy();
    await expect(q.start({ proto: 'udp', hostIp: LO, hostPort: p.port, targetIp: LO, targetPort: echo.port })).rejects.toThrow(
      `Bind for 127.0.0.1:${p.port} failed: port is already allocated`,
    );
    const c = await udpClient();
    await udpRoundTrips(c, p.port, [Buffer.from('x')]);
    const port = p.port;
    await p.stop();
    expect(p.active.udpFlows).toBe(0);
    // the port is free again
    const again = await proxy({ proto: 'udp', hostPort: port, targetPort: echo.port });
    expect(again.port).toBe(port);
    expect((await udpRoundTrips(c, port, [Buffer.from('y')]))[0].toString()).toBe('y');
  });
});
