// dns-client.mjs SERVER PORT SECONDS NAME... — sequential UDP queries (A) for
// the names in turn for SECONDS; prints JSON {queries, answered, qps}.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const [server, port, seconds, ...names] = process.argv.slice(2);
const queries = names.map((name, i) => dnsPacket.encode({ type: 'query', id: i + 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }));
const s = dgram.createSocket('udp4');
let sent = 0, answered = 0, i = 0;
const end = Date.now() + Number(seconds) * 1000;
const t0 = process.hrtime.bigint();
const next = () => {
  if (Date.now() >= end) {
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ queries: sent, answered, qps: answered / dt }) + '\n');
    s.close();
    return;
  }
  s.send(queries[i++ % queries.length], Number(port), server);
  sent++;
};
const timer = setInterval(() => {}, 1000);
s.on('message', (m) => {
  if (dnsPacket.decode(m).answers.length > 0) answered++;
  next();
});
s.on('close', () => clearInterval(timer));
next();
