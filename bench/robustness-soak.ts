/**
 * The robustness soak (bench/robustness.ts, part 3): one usernet daemon
 * (uplink to an outside namespace; `pub` with `web` publishing an echo
 * server; `l2` with an attacker `atk`; a /16 `big` with `atk2`) takes rounds
 * of, in turn: a spoofed SYN flood to the published port (20,000 SYNs in
 * ~1 s), a MAC flood from atk (4,000 random source MACs), an ARP flood from
 * atk2 (2,000 askers in ~1 s), a burst of 1,000 malformed frames from atk
 * (bench/robustness_probe.py malformed) and a batch of bad API requests
 * (bad targets and JSON, wrong types, 10,000-character names, a body
 * declared at 100 MB, hang-ups) — until the soak's time is up, while one
 * established echo stream (test/fixtures/echo_stream.py) runs through the
 * published port from outside the whole time.
 *
 * Reported: the daemon's RSS (VmRSS) and open fds at the start, after the
 * first round and at the end; whether the stream survived (and its longest
 * pause); whether, at the end, a new container can be created and pinged
 * and a new connection gets in through the published port.
 *
 * Anchor for RSS and fds: a twin daemon with the same set-up (networks,
 * containers, servers), idle for the same time, sampled at the same
 * moments. There is no kernel counterpart to a daemon's memory; the twin
 * separates what the abuse costs from what a Node process does anyway over
 * the same minutes (JIT, heap growth, timers). The ratio is the soaked
 * daemon's end/start growth over the twin's; the note adds end vs after the
 * first round (steady state: a leak shows there, warm-up does not).
 */
import { join } from 'node:path';
import { DaemonLab } from '../src/lab/lab.js';
import { round2, sleep } from './lab-util.js';
import { badApi, connects, ECHO_PORT, FIX, Kids, l2flood, neighMac, pingIn, PROBE, procSample, SPOOF_NET, SPOOF_NET2, synFlood, UPLINK_IP, usernetPublished, type Target } from './robustness-lab.js';
import type { Row } from './table.js';

const log = (s: string) => process.stderr.write(`robustness soak: ${s}\n`);

/** usernet lab number `n` (0 soaked, 1 idle): `pub` with web, `l2` with atk, `big` (/16) with atk2 */
async function soakLab(lab: DaemonLab, kids: Kids, n: number): Promise<Target> {
  const t = await usernetPublished(lab, kids, `10.${217 + n}.1`);
  lab.ok('network', 'create', '--subnet', `10.${217 + n}.2.0/24`, 'l2');
  lab.ok('network', 'create', '--subnet', `10.${219 + n}.0.0/16`, 'big');
  lab.ok('run', '--name', 'atk', '--network', 'l2');
  lab.ok('run', '--name', 'atk2', '--network', 'big');
  if (pingIn(lab.prefix + 'atk', `10.${217 + n}.2.1`, 2) < 1 || pingIn(lab.prefix + 'atk2', `10.${219 + n}.0.1`, 2) < 1) throw new Error('soak: a gateway does not answer');
  return t;
}

async function must(what: string, r: Promise<{ code: number; out: string; err: string }>): Promise<string> {
  const x = await r;
  if (x.code !== 0) throw new Error(`soak: ${what} failed (${x.code}): ${x.out}${x.err}`);
  return x.out;
}

const mb = (kb: number) => (kb / 1024).toFixed(1);

export async function benchSoak(seconds: number): Promise<Row[]> {
  const kids = new Kids();
  const lab = new DaemonLab('rbq');
  const idle = new DaemonLab('rbi');
  try {
    const t = await soakLab(lab, kids, 0);
    await soakLab(idle, kids, 1);
    const pid = lab.proc!.pid!;
    const idlePid = idle.proc!.pid!;
    const atk = lab.prefix + 'atk';
    const atk2 = lab.prefix + 'atk2';
    const gwMac = neighMac(atk, '10.217.2.1');

    // the established flow, for the whole soak
    const stream = kids.run(t.outside, ['python3', join(FIX, 'echo_stream.py'), UPLINK_IP, String(ECHO_PORT), String(seconds + 15)], (seconds + 120) * 1000);
    const ticks: number[] = [];
    stream.p.stdout!.on('data', (b) => {
      for (const m of String(b).matchAll(/^(\d+\.\d+) \d+$/gm)) ticks.push(Number(m[1]));
    });
    await sleep(1000);
    const s0 = { u: procSample(pid), i: procSample(idlePid) };
    let s1 = s0;
    const t0 = Date.now();
    let rounds = 0;
    let syns = 0;
    const api = { sent: 0, c4xx: 0, c5xx: 0, other: 0, none: 0 };
    while ((Date.now() - t0) / 1000 < seconds) {
      syns += (await synFlood(kids, t, 20_000, 2.5, 20_000, rounds % 2 ? SPOOF_NET2 : SPOOF_NET)).sent;
      await must('macflood', l2flood(kids, atk, ['macflood', 'eth0', '4000', gwMac], 10).done);
      await must('arpflood', l2flood(kids, atk2, ['arpflood', 'eth0', '2000', '10.219.0.1', '10.219.0.0/16', '1'], 10).done);
      await must('malformed', kids.run(atk, ['python3', PROBE, 'malformed', 'eth0', '1000'], 30_000).done);
      const a = await badApi(lab.socket);
      for (const k of ['sent', 'c4xx', 'c5xx', 'other', 'none'] as const) api[k] += a[k];
      if (lab.proc?.exitCode !== null || lab.proc?.signalCode !== null) throw new Error(`soak: the daemon died in round ${rounds + 1}:\n${lab.log.slice(-3000)}`);
      if (++rounds === 1) s1 = { u: procSample(pid), i: procSample(idlePid) };
    }
    const secs = (Date.now() - t0) / 1000;
    const s2 = { u: procSample(pid), i: procSample(idlePid) };
    log(`${rounds} rounds in ${secs.toFixed(0)} s; RSS KiB ${s0.u.rssKb} → ${s1.u.rssKb} → ${s2.u.rssKb} (idle ${s0.i.rssKb} → ${s1.i.rssKb} → ${s2.i.rssKb}); fds ${s0.u.fds} → ${s2.u.fds} (idle ${s0.i.fds} → ${s2.i.fds}); api ${JSON.stringify(api)}`);

    // at the end: a new container, pinged; a new connection through the published port
    const fresh = lab.cli('run', '--name', 'fresh', '--network', 'pub');
    const freshPings = fresh.code === 0 ? pingIn(lab.prefix + 'fresh', '10.217.1.2', 3) + pingIn(lab.prefix + 'fresh', '10.217.1.1', 2) : 0;
    const inbound = await connects(kids, t, 5, 0.5, 2);
    const st = await stream.done;
    const streamOk = st.code === 0 && /^done \d+$/m.test(st.out);
    const bytes = Number(/^done (\d+)$/m.exec(st.out)?.[1] ?? /(\d+)\s*$/.exec(st.out.trim())?.[1] ?? 0);
    let gap = 0;
    for (let k = 1; k < ticks.length; k++) gap = Math.max(gap, ticks[k] - ticks[k - 1]);
    const endOk = fresh.code === 0 && freshPings === 5 && inbound.ok === 5;
    log(`stream ${streamOk ? 'ok' : `FAILED (${st.code}): ${st.err.trim()}`}; fresh ${fresh.code} ${fresh.stderr.trim()} pings ${freshPings}/5; inbound ${inbound.ok}/5`);

    const grow = (a: number, b: number) => b / a;
    const rssU = grow(s0.u.rssKb, s2.u.rssKb);
    const rssI = grow(s0.i.rssKb, s2.i.rssKb);
    const fdU = grow(s0.u.fds, s2.u.fds);
    const fdI = grow(s0.i.fds, s2.i.fds);
    const twin = 'same daemon set-up, idle';
    const soak = `soak ${secs.toFixed(0)} s (${rounds} rounds)`;
    return [
      {
        name: `${soak}: daemon RSS end/start`,
        value: round2(rssU),
        unit: '×',
        anchorName: twin,
        anchor: round2(rssI),
        ratio: rssU / rssI,
        note: `MB start → after round 1 → end: ${mb(s0.u.rssKb)} → ${mb(s1.u.rssKb)} → ${mb(s2.u.rssKb)} (end/round 1 ${(s2.u.rssKb / s1.u.rssKb).toFixed(2)}×); idle ${mb(s0.i.rssKb)} → ${mb(s1.i.rssKb)} → ${mb(s2.i.rssKb)}`,
      },
      {
        name: `${soak}: daemon open fds end/start`,
        value: round2(fdU),
        unit: '×',
        anchorName: twin,
        anchor: round2(fdI),
        ratio: fdU / fdI,
        note: `fds ${s0.u.fds} → ${s1.u.fds} → ${s2.u.fds}; idle ${s0.i.fds} → ${s2.i.fds}`,
      },
      {
        name: `${soak}: established echo stream survived`,
        value: streamOk ? 1 : 0,
        unit: 'yes=1',
        note: `${(bytes / 2 ** 20).toFixed(1)} MiB echoed, longest pause ${gap.toFixed(2)} s; ${syns} SYNs, ${rounds * 4000} MAC-flood, ${rounds * 2000} ARP-flood, ${rounds * 1000} malformed frames; ${api.sent} bad API requests: ${api.c4xx} 4xx, ${api.c5xx} 5xx, ${api.none} unanswered, ${api.other} 2xx (a valid GET with a 4 KB junk header) (no anchor: pass/fail)`,
      },
      {
        name: `${soak}: then a new container pings, a new inbound connect gets in`,
        value: endOk ? 1 : 0,
        unit: 'yes=1',
        note: `run ${fresh.code === 0 ? 'ok' : `failed: ${fresh.stderr.trim()}`}; pings ${freshPings}/5; connects via published port ${inbound.ok}/5 (no anchor: pass/fail)`,
      },
    ];
  } finally {
    await kids.stopAll();
    await lab.cleanup();
    await idle.cleanup();
  }
}
