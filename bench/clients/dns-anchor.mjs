// dns-anchor.mjs PORT — the minimal anchor: a dns-packet UDP server on
// 127.0.0.1:PORT answering every A query with one fixed address.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const s = dgram.createSocket('udp4');
s.on('message', (m, r) => {
  const q = dnsPacket.decode(m);
  const name = q.questions[0].name;
  s.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: 'A', name, ttl: 600, data: '10.0.0.1' }] }), r.port, r.address);
});
s.bind(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('ready\n'));
