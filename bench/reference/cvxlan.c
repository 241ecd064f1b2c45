/*
 * cvxlan — the anchor for bench/overlay.ts: the plain-VXLAN hot path of
 * src/overlay/vtep.ts (Vtep.process: decapAll then encapAll) written
 * plainly in C, to be built with `cc -O2`. Same pool layout (2 KiB slots,
 * 128 B headroom, offsets/lengths/inPort arrays), same SPSC rings of uint32
 * handles popped in batches of 64, same per-frame checks and counters, same
 * VTEP table (MacTable: open addressing, linear probing, keyed
 * multiply-shift hash, 16-byte records, seed ^ VNI), same VNI → network and
 * sender address → VTEP index maps (small open-addressing tables where the
 * JS has a Map), same outer headers (IPv4 with DF, TTL 64 and a computed
 * header checksum, UDP with the flow-hashed source port and checksum 0,
 * VXLAN flags 0x08 + VNI) prepended into the headroom without a copy, same
 * decap (length/flags/VNI checks, source-MAC checks, learning against the
 * sender's address read from the 8 bytes before the datagram).
 *
 * Not here (never on the measured path): encryption, proxy ARP (the bench
 * sends unicast to known MACs only), aging.
 *
 * Traffic and timing rule are bench/overlay.ts's: F prepared 64-byte TCP
 * frames (encap: local container → one of M remote MACs behind V remote
 * VTEPs, installed as static entries; decap: VXLAN datagrams from those
 * VTEPs to local containers). A round is one process() call over the F
 * frames, timed alone; between rounds each handle's offset and length are
 * reset to the prepared frame and it goes back on the input ring, outside
 * the clock.
 *
 * Usage: cvxlan --mode=encap|decap --seconds=1 --frames=1024 --macs=16 --vteps=4
 * Prints JSON: {"mode":"encap","mpps":...,"p50":...,"wall":...} — mpps is
 * frames / total process() time, p50 the median round's rate, wall the
 * rate including the resetting between rounds.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOT 2048u
#define HEADROOM 128u
#define EMPTY (-1)
#define BATCH 64u

#define VXLAN_HLEN 8u
#define OUTER_IP_UDP_LEN 28u
#define FLAG_I 0x08u
#define FLAG_ENCRYPTED 0x02u
#define SRC_PORT_FIRST 49152u

#define VNI 4242u
#define UDP_PORT 4789u
#define LOCAL_IP 0xc6120001u /* 198.18.0.1 */
#define SEED 0x5eed
#define FRAME 64u
#define LOCALS 16u

enum { R_RUNT, R_OVERSIZE, R_BADSRC, R_RINGFULL, R_POOLEMPTY, R_TABLEFULL, R_MALFORMED, R_BADSUM,
       R_NOTFORUS, R_NOROUTE, R_HAIRPIN, R_TXERROR, R_FILTERED, R_PORTDOWN, R_TTL, R_UNSUPPORTED, R_N };

/* ---------------------------------------------------------------- pool */
typedef struct {
  uint32_t cap;
  uint8_t *bytes;
  uint32_t *offsets, *lengths;
  uint16_t *inport;
  uint32_t *stack;
  uint32_t top;
} pool_t;

static void pool_init(pool_t *p, uint32_t cap) {
  p->cap = cap;
  p->bytes = aligned_alloc(64, (size_t)cap * SLOT);
  memset(p->bytes, 0, (size_t)cap * SLOT);
  p->offsets = calloc(cap, 4);
  p->lengths = calloc(cap, 4);
  p->inport = calloc(cap, 2);
  p->stack = calloc(cap, 4);
  for (uint32_t i = 0; i < cap; i++) p->stack[i] = cap - 1 - i;
  p->top = cap;
}
static int64_t pool_alloc(pool_t *p) {
  if (p->top == 0) return -1;
  uint32_t h = p->stack[--p->top];
  p->offsets[h] = h * SLOT + HEADROOM;
  p->lengths[h] = 0;
  return h;
}
static inline void pool_free(pool_t *p, uint32_t h) { p->stack[p->top++] = h; }
static int64_t pool_clone(pool_t *p, uint32_t h) {
  int64_t c = pool_alloc(p);
  if (c < 0) return -1;
  memcpy(p->bytes + p->offsets[c], p->bytes + p->offsets[h], p->lengths[h]);
  p->lengths[c] = p->lengths[h];
  p->inport[c] = p->inport[h];
  return c;
}
static inline int pool_prepend(pool_t *p, uint32_t h, uint32_t n) {
  uint32_t start = h * SLOT;
  if (p->offsets[h] - n < start || p->offsets[h] < n) return 0;
  p->offsets[h] -= n;
  p->lengths[h] += n;
  return 1;
}

/* ---------------------------------------------------------------- ring */
typedef struct {
  uint32_t size, mask, head, tail;
  uint32_t *slots;
} ring_t;

static void ring_init(ring_t *r, uint32_t size) {
  r->size = size;
  r->mask = size - 1;
  r->head = r->tail = 0;
  r->slots = calloc(size, 4);
}
static inline int ring_push(ring_t *r, uint32_t h) {
  if (r->tail - r->head == r->size) return 0;
  r->slots[r->tail & r->mask] = h;
  r->tail++;
  return 1;
}
static inline uint32_t ring_pop_into(ring_t *r, uint32_t *out, uint32_t max) {
  uint32_t n = r->tail - r->head;
  if (n > max) n = max;
  for (uint32_t i = 0; i < n; i++) out[i] = r->slots[(r->head + i) & r->mask];
  r->head += n;
  return n;
}

/* ------------------------------------------------------- port/counters */
typedef struct {
  double rx_packets, rx_bytes, tx_packets, tx_bytes, drops;
  double reasons[R_N];
} counters_t;

typedef struct {
  uint16_t id;
  ring_t rx, tx;
  counters_t c;
} port_t;

static inline void count_drop(counters_t *c, int reason) {
  c->drops++;
  c->reasons[reason]++;
}

/* ----------------------------------------------------------- MAC table */
typedef struct {
  int32_t lo;
  int32_t hi_port;
  double seen;
} rec_t;

typedef struct {
  uint32_t capacity, slots, mask, shift, size;
  rec_t *rec;
  uint8_t *statics;
  int32_t k0, k1;
} mactable_t;

static void table_init(mactable_t *t, uint32_t capacity, int32_t seed) {
  uint32_t slots = 2, log2 = 1;
  while (slots < 2 * capacity) slots *= 2, log2++;
  t->capacity = capacity;
  t->slots = slots;
  t->mask = slots - 1;
  t->shift = 32 - log2;
  t->size = 0;
  t->rec = aligned_alloc(64, (size_t)slots * sizeof(rec_t));
  for (uint32_t i = 0; i < slots; i++) t->rec[i].hi_port = EMPTY;
  t->statics = calloc(slots, 1);
  uint32_t s = (uint32_t)seed;
  s = (s ^ (s >> 16)) * 0x7feb352du;
  s = (s ^ (s >> 15)) * 0x846ca68bu;
  t->k0 = (int32_t)(s ^ (s >> 16));
  s = ((uint32_t)seed ^ 0x9e3779b9u) * 0x85ebca6bu;
  s = (s ^ (s >> 13)) * 0xc2b2ae35u;
  t->k1 = (int32_t)(s ^ (s >> 16));
}
static inline uint32_t table_hash(const mactable_t *t, int32_t hi, int32_t lo) {
  return (((uint32_t)(lo ^ t->k0) * 0x9e3779b1u) ^ ((uint32_t)(hi ^ t->k1) * 0x85ebca77u)) >> t->shift;
}
/* slot of (hi, lo) or -1 */
static inline int32_t table_find(const mactable_t *t, int32_t hi, int32_t lo) {
  uint32_t i = table_hash(t, hi, lo);
  for (;;) {
    int32_t w = t->rec[i].hi_port;
    if (w == EMPTY) return -1;
    if ((w & 0xffff) == hi && t->rec[i].lo == lo) return (int32_t)i;
    i = (i + 1) & t->mask;
  }
}
static inline int table_learn(mactable_t *t, int32_t hi, int32_t lo, uint16_t port, double now) {
  uint32_t i = table_hash(t, hi, lo);
  for (;;) {
    int32_t w = t->rec[i].hi_port;
    if (w == EMPTY) {
      if (t->size >= t->capacity || (hi & 0x100)) return 0;
      t->rec[i].lo = lo;
      t->rec[i].hi_port = hi | ((int32_t)port << 16);
      t->rec[i].seen = now;
      t->statics[i] = 0;
      t->size++;
      return 1;
    }
    if ((w & 0xffff) == hi && t->rec[i].lo == lo) {
      if (((uint32_t)w >> 16) != port) {
        if (t->statics[i]) return 1;
        t->rec[i].hi_port = hi | ((int32_t)port << 16);
      }
      t->rec[i].seen = now;
      return 1;
    }
    i = (i + 1) & t->mask;
  }
}
static void table_add_static(mactable_t *t, uint64_t mac, uint16_t port) {
  int32_t hi = (int32_t)((mac >> 32) & 0xffff), lo = (int32_t)(uint32_t)mac;
  int32_t i = table_find(t, hi, lo);
  if (i < 0) {
    table_learn(t, hi, lo, port, 0);
    i = table_find(t, hi, lo);
  }
  t->rec[i].hi_port = hi | ((int32_t)port << 16);
  t->statics[i] = 1;
}

/* ------------------------------------------ small maps (a Map in the JS) */
/* uint32 key → int32 value, open addressing, linear probing; key 0 = empty (never a VNI or VTEP used here) */
typedef struct {
  uint32_t mask, shift;
  uint32_t *keys;
  int32_t *vals;
} umap_t;

static void umap_init(umap_t *m, uint32_t log2) {
  m->mask = (1u << log2) - 1;
  m->shift = 32 - log2;
  m->keys = calloc(1u << log2, 4);
  m->vals = calloc(1u << log2, 4);
}
static inline int32_t umap_get(const umap_t *m, uint32_t k) {
  uint32_t i = (k * 0x9e3779b1u) >> m->shift;
  for (;;) {
    uint32_t x = m->keys[i];
    if (x == k) return m->vals[i];
    if (x == 0) return -1;
    i = (i + 1) & m->mask;
  }
}
static void umap_set(umap_t *m, uint32_t k, int32_t v) {
  uint32_t i = (k * 0x9e3779b1u) >> m->shift;
  while (m->keys[i] != 0 && m->keys[i] != k) i = (i + 1) & m->mask;
  m->keys[i] = k;
  m->vals[i] = v;
}

/* ---------------------------------------------------------------- vtep */
typedef struct {
  uint32_t vni;
  port_t *port;
  int32_t gw_hi;
  uint32_t gw_lo;
  mactable_t table;
  uint32_t flood[16];
  uint32_t flood_count;
} net_t;

typedef struct {
  pool_t *pool;
  port_t *tunnel;
  uint32_t local_ip;
  uint16_t udp_port;
  int32_t seed;
  net_t *nets[16];
  uint32_t nnets;
  umap_t by_vni;     /* vni → index into nets */
  uint32_t vtep_ips[4097];
  umap_t vtep_index; /* ip → index */
  uint32_t next_idx;
  uint32_t batch[BATCH];
  uint32_t ip_id;
} vtep_t;

static int32_t vtep_index_of(vtep_t *v, uint32_t ip) {
  int32_t idx = umap_get(&v->vtep_index, ip);
  if (idx >= 0) return idx;
  if (v->next_idx >= 4097) return -1;
  idx = (int32_t)v->next_idx++;
  v->vtep_ips[idx] = ip;
  umap_set(&v->vtep_index, ip, idx);
  return idx;
}

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline uint32_t mix(uint32_t h, uint32_t k) {
  k *= 0xcc9e2d51u;
  k = (k << 15) | (k >> 17);
  k *= 0x1b873593u;
  h ^= k;
  h = (h << 13) | (h >> 19);
  return h * 5 + 0xe6546b64u;
}

/* flowSourcePort of src/wire/vxlan.ts */
static inline uint32_t flow_source_port(const uint8_t *f, uint32_t len, int32_t seed) {
  uint32_t h = (uint32_t)seed;
  h = mix(h, rd32(f));
  h = mix(h, rd32(f + 4));
  h = mix(h, rd32(f + 8));
  uint32_t type = rd16(f + 12);
  if (type == 0x0800 && len >= 34) {
    const uint8_t *ip = f + 14;
    uint32_t ihl = (uint32_t)(ip[0] & 0x0f) << 2;
    uint32_t proto = ip[9];
    h = mix(h, rd32(ip + 12));
    h = mix(h, rd32(ip + 16));
    h = mix(h, proto);
    uint32_t frag = rd16(ip + 6) & 0x1fff;
    if ((proto == 6 || proto == 17) && frag == 0 && len >= 14 + ihl + 4) h = mix(h, rd32(ip + ihl));
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return SRC_PORT_FIRST + (h & 0x3fff);
}

static inline uint32_t ip_checksum(const uint8_t *p, uint32_t len) {
  uint32_t s = 0;
  for (uint32_t i = 0; i < len; i += 2) s += rd16(p + i);
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

static inline void write_outer(uint8_t *b, uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport, uint32_t payload,
                               uint32_t id) {
  uint32_t total = OUTER_IP_UDP_LEN + payload;
  wr32(b, 0x45000000u | total);
  wr32(b + 4, ((id & 0xffff) << 16) | 0x4000);
  wr32(b + 8, 0x40110000u);
  wr32(b + 12, src);
  wr32(b + 16, dst);
  wr16(b + 10, ip_checksum(b, 20));
  wr16(b + 20, sport);
  wr16(b + 22, dport);
  wr16(b + 24, 8 + payload);
  wr16(b + 26, 0);
}

static inline void vtep_drop(vtep_t *v, counters_t *c, uint32_t h, int reason) {
  count_drop(c, reason);
  pool_free(v->pool, h);
}

static void vtep_send(vtep_t *v, net_t *net, uint32_t h, uint32_t dst) {
  pool_t *pool = v->pool;
  uint8_t *b = pool->bytes;
  uint32_t sport = flow_source_port(b + pool->offsets[h], pool->lengths[h], v->seed);
  if (!pool_prepend(pool, h, VXLAN_HLEN)) {
    vtep_drop(v, &net->port->c, h, R_MALFORMED);
    return;
  }
  uint8_t *x = b + pool->offsets[h];
  wr32(x, FLAG_I << 24);
  wr32(x + 4, (net->vni & 0xffffff) << 8);
  uint32_t payload = pool->lengths[h];
  if (!pool_prepend(pool, h, OUTER_IP_UDP_LEN)) {
    vtep_drop(v, &net->port->c, h, R_MALFORMED);
    return;
  }
  v->ip_id = (v->ip_id + 1) & 0xffff;
  write_outer(b + pool->offsets[h], v->local_ip, dst, sport, v->udp_port, payload, v->ip_id);
  counters_t *tc = &v->tunnel->c;
  if (!ring_push(&v->tunnel->tx, h)) {
    vtep_drop(v, tc, h, R_RINGFULL);
    return;
  }
  tc->tx_packets++;
  tc->tx_bytes += pool->lengths[h];
}

static void vtep_flood(vtep_t *v, net_t *net, uint32_t h) {
  uint32_t n = net->flood_count;
  if (n == 0) {
    vtep_drop(v, &net->port->c, h, R_NOROUTE);
    return;
  }
  for (uint32_t i = 0; i + 1 < n; i++) {
    int64_t c = pool_clone(v->pool, h);
    if (c < 0) {
      count_drop(&net->port->c, R_POOLEMPTY);
      continue;
    }
    vtep_send(v, net, (uint32_t)c, v->vtep_ips[net->flood[i]]);
  }
  vtep_send(v, net, h, v->vtep_ips[net->flood[n - 1]]);
}

static void vtep_decap_all(vtep_t *v, double now) {
  pool_t *pool = v->pool;
  uint8_t *b = pool->bytes;
  uint32_t *offsets = pool->offsets, *lengths = pool->lengths;
  counters_t *tc = &v->tunnel->c;
  uint32_t *buf = v->batch;
  for (;;) {
    uint32_t n = ring_pop_into(&v->tunnel->rx, buf, BATCH);
    if (n == 0) return;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = buf[i];
      uint32_t o = offsets[h];
      uint32_t len = lengths[h];
      tc->rx_packets++;
      tc->rx_bytes += len;
      if (len < VXLAN_HLEN + 14 || (b[o] & FLAG_I) == 0) {
        vtep_drop(v, tc, h, R_MALFORMED);
        continue;
      }
      int32_t ni = umap_get(&v->by_vni, rd32(b + o + 4) >> 8);
      if (ni < 0) {
        vtep_drop(v, tc, h, R_NOTFORUS);
        continue;
      }
      net_t *net = v->nets[ni];
      uint32_t sender = rd32(b + o - 8);
      if (b[o] & FLAG_ENCRYPTED) { /* a plain network: encrypted frames are filtered */
        vtep_drop(v, tc, h, R_FILTERED);
        continue;
      }
      offsets[h] = o + VXLAN_HLEN;
      lengths[h] = len - VXLAN_HLEN;
      const uint8_t *f = b + o + VXLAN_HLEN;
      int32_t s_hi = (int32_t)rd16(f + 6);
      uint32_t s_lo = rd32(f + 8);
      counters_t *pc = &net->port->c;
      if ((s_hi & 0x100) || (s_hi == net->gw_hi && s_lo == net->gw_lo) || (s_hi == 0 && s_lo == 0)) {
        vtep_drop(v, pc, h, R_BADSRC);
        continue;
      }
      int32_t idx = umap_get(&v->vtep_index, sender);
      if (idx >= 0) table_learn(&net->table, s_hi, (int32_t)s_lo, (uint16_t)idx, now);
      else {
        int32_t nidx = vtep_index_of(v, sender);
        if (nidx > 0) table_learn(&net->table, s_hi, (int32_t)s_lo, (uint16_t)nidx, now);
      }
      pc->rx_packets++;
      pc->rx_bytes += lengths[h];
      pool->inport[h] = net->port->id;
      if (!ring_push(&net->port->rx, h)) vtep_drop(v, pc, h, R_RINGFULL);
    }
  }
}

static void vtep_encap_all(vtep_t *v, net_t *net) {
  pool_t *pool = v->pool;
  const uint8_t *b = pool->bytes;
  const uint32_t *offsets = pool->offsets, *lengths = pool->lengths;
  counters_t *pc = &net->port->c;
  uint32_t *buf = v->batch;
  mactable_t *t = &net->table;
  for (;;) {
    uint32_t n = ring_pop_into(&net->port->tx, buf, BATCH);
    if (n == 0) return;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = buf[i];
      uint32_t o = offsets[h];
      uint32_t len = lengths[h];
      pc->tx_packets++;
      pc->tx_bytes += len;
      if (len < 14) {
        vtep_drop(v, pc, h, R_MALFORMED);
        continue;
      }
      const uint8_t *f = b + o;
      int32_t d_hi = (int32_t)rd16(f);
      int32_t s_hi = (int32_t)rd16(f + 6);
      uint32_t s_lo = rd32(f + 8);
      if (s_hi == net->gw_hi && s_lo == net->gw_lo) {
        vtep_drop(v, pc, h, R_FILTERED);
        continue;
      }
      if (d_hi & 0x100) { /* broadcast/multicast (proxy ARP not modelled: never on the measured path) */
        vtep_flood(v, net, h);
        continue;
      }
      int32_t slot = table_find(t, d_hi, (int32_t)rd32(f + 2));
      if (slot < 0) {
        vtep_flood(v, net, h);
        continue;
      }
      vtep_send(v, net, h, v->vtep_ips[(uint32_t)t->rec[slot].hi_port >> 16]);
    }
  }
}

static void vtep_process(vtep_t *v, double now) {
  vtep_decap_all(v, now);
  for (uint32_t i = 0; i < v->nnets; i++) vtep_encap_all(v, v->nets[i]);
}

/* --------------------------------------------------------------- bench */
/* the same addresses and frames as bench/overlay.ts */
static uint64_t remote_mac(uint32_t r) { return 0x02420a140100ull + r; }
static uint64_t local_mac(uint32_t l) { return 0x02420a140002ull + l; }
#define GW_MAC 0x02420a140001ull
static uint32_t remote_ip(uint32_t r) { return 0x0a140100u + r; }  /* 10.20.1.r */
static uint32_t local_ip(uint32_t l) { return 0x0a140002u + l; }   /* 10.20.0.(l+2) */
static uint32_t vtep_ip(uint32_t i) { return 0xc6120002u + i; }    /* 198.18.0.(i+2) */

static void write_mac(uint8_t *b, uint64_t mac) {
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(mac >> (8 * (5 - i)));
}

/* a 64-byte Ethernet + IPv4 + TCP frame with 10 data bytes, IPv4 header checksum set */
static void write_inner(uint8_t *b, uint64_t dmac, uint64_t smac, uint32_t sip, uint32_t dip, uint32_t sport,
                        uint32_t dport, uint32_t k) {
  write_mac(b, dmac);
  write_mac(b + 6, smac);
  b[12] = 0x08;
  b[13] = 0x00;
  uint8_t *ip = b + 14;
  memset(ip, 0, 40);
  ip[0] = 0x45;
  wr16(ip + 2, 50);
  wr16(ip + 4, k & 0xffff);
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = 6;
  wr32(ip + 12, sip);
  wr32(ip + 16, dip);
  wr16(ip + 10, ip_checksum(ip, 20));
  uint8_t *tcp = ip + 20;
  wr16(tcp, sport);
  wr16(tcp + 2, dport);
  wr32(tcp + 4, k * 1000u);
  tcp[12] = 0x50;
  tcp[13] = 0x18;
  wr16(tcp + 14, 0xfaf0);
  for (int i = 0; i < 10; i++) tcp[20 + i] = (uint8_t)(k + i);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double run_case(int decap, double seconds, uint32_t F, uint32_t M, uint32_t V, double *p50, double *wall) {
  uint32_t ring_size = 2;
  while (ring_size < 2 * F) ring_size *= 2;
  pool_t pool;
  pool_init(&pool, F + 64);
  port_t *tunnel = calloc(1, sizeof(port_t));
  port_t *port = calloc(1, sizeof(port_t));
  tunnel->id = 1;
  port->id = 2;
  ring_init(&tunnel->rx, ring_size);
  ring_init(&tunnel->tx, ring_size);
  ring_init(&port->rx, ring_size);
  ring_init(&port->tx, ring_size);
  vtep_t *v = calloc(1, sizeof(vtep_t));
  v->pool = &pool;
  v->tunnel = tunnel;
  v->local_ip = LOCAL_IP;
  v->udp_port = UDP_PORT;
  v->seed = SEED;
  v->next_idx = 1;
  umap_init(&v->by_vni, 4);
  umap_init(&v->vtep_index, 13);
  net_t *net = calloc(1, sizeof(net_t));
  net->vni = VNI;
  net->port = port;
  net->gw_hi = (int32_t)(GW_MAC >> 32);
  net->gw_lo = (uint32_t)GW_MAC;
  table_init(&net->table, 4096, SEED ^ (int32_t)VNI);
  v->nets[0] = net;
  v->nnets = 1;
  umap_set(&v->by_vni, VNI, 0);
  /* control plane: every remote endpoint static behind its VTEP, every VTEP in the flood list */
  for (uint32_t r = 0; r < M; r++) table_add_static(&net->table, remote_mac(r), (uint16_t)vtep_index_of(v, vtep_ip(r % V)));
  for (uint32_t i = 0; i < V; i++) net->flood[net->flood_count++] = (uint32_t)vtep_index_of(v, vtep_ip(i));
  /* prepared frames */
  uint32_t *handles = calloc(F, 4), *base = calloc(F, 4);
  uint32_t flen = decap ? FRAME + VXLAN_HLEN : FRAME;
  for (uint32_t k = 0; k < F; k++) {
    uint32_t h = (uint32_t)pool_alloc(&pool);
    handles[k] = h;
    base[k] = pool.offsets[h];
    uint8_t *b = pool.bytes + base[k];
    if (!decap) {
      uint32_t l = k % LOCALS, r = (k * 7 + 3) % M;
      write_inner(b, remote_mac(r), local_mac(l), local_ip(l), remote_ip(r), 32768 + k, 5201, k);
    } else {
      uint32_t l = k % LOCALS, r = k % M;
      wr32(b - 8, vtep_ip(r % V)); /* the sender, as the tunnel device leaves it */
      wr16(b - 4, UDP_PORT);
      wr16(b - 2, 0);
      wr32(b, FLAG_I << 24);
      wr32(b + 4, VNI << 8);
      write_inner(b + 8, local_mac(l), remote_mac(r), remote_ip(r), local_ip(l), 5201, 32768 + k, k);
    }
    pool.lengths[h] = flen;
  }
  ring_t *in = decap ? &tunnel->rx : &port->tx;
  ring_t *out = decap ? &port->rx : &tunnel->tx;
  for (uint32_t k = 0; k < F; k++) ring_push(in, handles[k]);
  uint32_t *tmp = calloc(ring_size, 4);
  size_t max_rounds = 1u << 20, rounds = 0;
  double *times = malloc(max_rounds * sizeof(double));
  double frames = 0, proc_ns = 0, now = 1;
  double w0 = now_ns();
  while (proc_ns < seconds * 1e9) {
    double t0 = now_ns();
    vtep_process(v, now);
    double dt = now_ns() - t0;
    proc_ns += dt;
    if (rounds < max_rounds) times[rounds++] = dt;
    frames += F;
    /* reset each handle to its prepared frame and put it back (outside the clock) */
    uint32_t n = ring_pop_into(out, tmp, ring_size);
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = tmp[i];
      pool.offsets[h] = h * SLOT + HEADROOM;
      pool.lengths[h] = flen;
      ring_push(in, h);
    }
    now += 0.01;
  }
  *wall = frames / (now_ns() - w0) * 1e3;
  counters_t *ic = decap ? &tunnel->c : &port->c, *oc = decap ? &port->c : &tunnel->c;
  double in_count = decap ? ic->rx_packets : ic->tx_packets, out_count = decap ? oc->rx_packets : oc->tx_packets;
  if (tunnel->c.drops != 0 || port->c.drops != 0 || in_count != frames || out_count != frames) {
    fprintf(stderr, "cvxlan lost frames: in %.0f out %.0f drops %.0f/%.0f expected %.0f\n", in_count, out_count,
            tunnel->c.drops, port->c.drops, frames);
    exit(1);
  }
  /* spot check: an encapsulated frame's outer IPv4 header sums to zero */
  if (!decap) {
    uint32_t h = handles[0];
    pool.offsets[h] = base[0];
    pool.lengths[h] = flen;
    /* one more pass for this frame alone */
    ring_t *r = in;
    while (r->tail != r->head) r->head++;
    ring_push(r, h);
    vtep_process(v, now);
    if (ip_checksum(pool.bytes + pool.offsets[h], 20) != 0 || pool.lengths[h] != FRAME + 36) {
      fprintf(stderr, "cvxlan: bad outer header\n");
      exit(1);
    }
  }
  qsort(times, rounds, sizeof(double), cmp_double);
  *p50 = F / times[rounds / 2] * 1e3;
  free(times);
  free(tmp);
  free(handles);
  free(base);
  free(net->table.rec);
  free(net->table.statics);
  free(net);
  free(v->by_vni.keys);
  free(v->by_vni.vals);
  free(v->vtep_index.keys);
  free(v->vtep_index.vals);
  free(v);
  free(tunnel->rx.slots);
  free(tunnel->tx.slots);
  free(port->rx.slots);
  free(port->tx.slots);
  free(tunnel);
  free(port);
  free(pool.bytes);
  free(pool.offsets);
  free(pool.lengths);
  free(pool.inport);
  free(pool.stack);
  return frames / proc_ns * 1e3;
}

int main(int argc, char **argv) {
  double seconds = 1;
  uint32_t F = 1024, M = 16, V = 4;
  int decap = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "--seconds=", 10)) seconds = atof(a + 10);
    else if (!strncmp(a, "--frames=", 9)) F = (uint32_t)atoi(a + 9);
    else if (!strncmp(a, "--macs=", 7)) M = (uint32_t)atoi(a + 7);
    else if (!strncmp(a, "--vteps=", 8)) V = (uint32_t)atoi(a + 8);
    else if (!strcmp(a, "--mode=encap")) decap = 0;
    else if (!strcmp(a, "--mode=decap")) decap = 1;
    else {
      fprintf(stderr, "unknown argument %s\n", a);
      return 2;
    }
  }
  if (F == 0 || M == 0 || V == 0 || V > 4096 || M > 255) {
    fprintf(stderr, "bad parameters\n");
    return 2;
  }
  double p50, wall;
  run_case(decap, seconds < 0.05 ? seconds : 0.05, F, M, V, &p50, &wall); /* warm-up, as the JS side */
  double mpps = run_case(decap, seconds, F, M, V, &p50, &wall);
  printf("{\"mode\":\"%s\",\"mpps\":%.3f,\"p50\":%.3f,\"wall\":%.3f}\n", decap ? "decap" : "encap", mpps, p50, wall);
  return 0;
}
