/*
 * cnat — the anchor for bench/nat.ts: conntrack lookup + NAT rewrite of
 * src/nat/{tuple-index,conntrack,nat}.ts written plainly in C, to be built
 * with `cc -O2`. Same table layout (index of 8-byte slots: tag = full
 * hash, ref (-1 = empty), slots = 4 x capacity rounded up to a power of
 * two; 64-byte flow records: orig src/dst/ports, reply src/dst/ports, meta,
 * ..., where a tag match is confirmed), same keyed multiply-xor hash and
 * keys, same linear probe, same batch path (tag a batch of 64 keys touching
 * their home slots, probe by tag touching each candidate's record, confirm,
 * then rewrite), same
 * rewrite (addresses, ports, IP and TCP checksums by RFC 1624 eqn. 3 over
 * every changed word), same frames (64-byte TCP, one prepared per flow,
 * flows in the same random order, passing through a pool of 4096 slots of
 * 128 bytes with 64 bytes headroom), same timing rule (a round is one pass
 * over the pool's frames, timed alone; the next frames are loaded between
 * rounds, outside the clock).
 *
 * Usage: cnat --seconds=1 --flows=1000[,100000] [--simple]
 *   prints [{"flows":N,"mpps":...,"p50":...}, ...]
 *   (--simple: one lookup + rewrite per frame instead of the batch path)
 * cnat --rss: RSS growth (MB) from before allocating a table of capacity
 *   131072 to after inserting 100k flows: {"rssMB":...,"tableMB":...}
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CAPACITY 131072u
#define SEED 0x5eedu
#define FRAME 64u
#define SLOT 128u
#define HEADROOM 64u
#define UPLINK 0xc0a80102u
#define BATCH 64
#define EMPTY (-1)
#define REF_MASK 0xffffff

/* ------------------------------------------------------------- table */
typedef struct {
  uint32_t capacity, slots, mask, shift, size;
  int32_t k0, k1, k2;
  int32_t *idx; /* 2 words a slot: tag (full hash), ref (-1 = empty) */
  int32_t *rec; /* 16 words a flow */
  uint32_t *mark;
  int32_t *free_ids;
  uint32_t free_top;
  double searched, found;
  int32_t touched;
} ct_t;

static int32_t mix(uint32_t x) {
  x = (x ^ (x >> 16)) * 0x85ebca6bu;
  x = (x ^ (x >> 13)) * 0xc2b2ae35u;
  return (int32_t)(x ^ (x >> 16));
}

static void ct_init(ct_t *t, uint32_t cap, uint32_t seed) {
  uint32_t slots = 8, lg = 3;
  while (slots < 4 * cap) slots *= 2, lg++;
  t->capacity = cap;
  t->slots = slots;
  t->mask = slots - 1;
  t->shift = 32 - lg;
  t->size = 0;
  t->k0 = mix(seed ^ 0x243f6a88u);
  t->k1 = mix(seed ^ 0x85a308d3u);
  t->k2 = mix(seed ^ 0x13198a2eu);
  t->idx = aligned_alloc(64, (size_t)slots * 8);
  for (uint32_t i = 0; i < slots; i++) t->idx[2 * i] = 0, t->idx[2 * i + 1] = EMPTY;
  t->rec = aligned_alloc(64, (size_t)cap * 64);
  memset(t->rec, 0, (size_t)cap * 64);
  for (uint32_t f = 0; f < cap; f++) {
    double inf = 1.0 / 0.0;
    memcpy(&t->rec[f * 16 + 8], &inf, 8);
  }
  t->mark = calloc(cap, 4);
  t->free_ids = malloc((size_t)cap * 4);
  for (uint32_t i = 0; i < cap; i++) t->free_ids[i] = (int32_t)(cap - 1 - i);
  t->free_top = cap;
  t->searched = t->found = 0;
  t->touched = 0;
}

/* the tag: full 32-bit hash; home slot = tag >> shift */
static inline uint32_t ct_tag(const ct_t *t, uint32_t proto, int32_t s, int32_t d, int32_t p) {
  uint32_t h = ((uint32_t)(s ^ t->k0) * 0x9e3779b1u) ^ ((uint32_t)(d ^ t->k1) * 0x85ebca77u) ^
               ((uint32_t)(p ^ t->k2) * 0xc2b2ae3du) ^ proto;
  return (h ^ (h >> 16)) * 0x7feb352du;
}

static inline int ct_matches(const ct_t *t, int32_t ref, uint32_t proto, int32_t s, int32_t d, int32_t p) {
  const int32_t *r = &t->rec[(ref >> 1) * 16];
  const int32_t *k = r + (ref & 1) * 3;
  return k[0] == s && k[1] == d && k[2] == p && ((uint32_t)r[6] & 0xff) == proto;
}

static inline int32_t ct_find(ct_t *t, uint32_t proto, int32_t s, int32_t d, int32_t p) {
  const int32_t *idx = t->idx;
  uint32_t tag = ct_tag(t, proto, s, d, p), i = tag >> t->shift;
  t->searched++;
  for (;;) {
    int32_t ref = idx[i * 2 + 1];
    if (ref == EMPTY) return -1;
    if ((uint32_t)idx[i * 2] == tag && ct_matches(t, ref, proto, s, d, p)) {
      t->found++;
      return ref;
    }
    i = (i + 1) & t->mask;
  }
}

static void ct_insert(ct_t *t, uint32_t proto, int32_t s, int32_t d, int32_t p, int32_t ref) {
  uint32_t tag = ct_tag(t, proto, s, d, p), i = tag >> t->shift;
  while (t->idx[i * 2 + 1] != EMPTY) i = (i + 1) & t->mask;
  t->idx[i * 2] = (int32_t)tag;
  t->idx[i * 2 + 1] = ref;
}

/* create (no clash/eviction logic needed for the bench's unique flows) + the handshake's meta */
static int32_t ct_create(ct_t *t, uint32_t proto, int32_t os, int32_t od, int32_t op, int32_t rs, int32_t rd,
                         int32_t rp) {
  if (ct_find(t, proto, os, od, op) >= 0 || ct_find(t, proto, rs, rd, rp) >= 0 || t->free_top == 0) return -1;
  int32_t f = t->free_ids[--t->free_top];
  int32_t *r = &t->rec[f * 16];
  r[0] = os, r[1] = od, r[2] = op, r[3] = rs, r[4] = rd, r[5] = rp;
  r[6] = (int32_t)(proto | (3u << 8) | (7u << 16)); /* ESTABLISHED, used|replied|assured */
  double e = 432000000.0;
  memcpy(&r[8], &e, 8);
  ct_insert(t, proto, os, od, op, f << 1);
  ct_insert(t, proto, rs, rd, rp, (f << 1) | 1);
  t->size++;
  return f;
}

/* Conntrack.lookupBulk: keys of KEY_STRIDE words [src, dst, ports, proto, ref, scratch, free, free] */
#define KEY_STRIDE 8
static uint32_t ct_lookup_bulk(ct_t *t, int32_t *keys, int n) {
  const int32_t *idx = t->idx, *rec = t->rec;
  int32_t touched = 0;
  uint32_t hits = 0;
  int end = n * KEY_STRIDE;
  for (int b = 0; b < end; b += KEY_STRIDE) {
    uint32_t tag = ct_tag(t, (uint32_t)keys[b + 3], keys[b], keys[b + 1], keys[b + 2]);
    keys[b + 4] = (int32_t)tag;
    touched ^= idx[(tag >> t->shift) * 2 + 1];
  }
  for (int b = 0; b < end; b += KEY_STRIDE) {
    uint32_t tag = (uint32_t)keys[b + 4], i = tag >> t->shift;
    int32_t ref = -1;
    for (;;) {
      int32_t r = idx[i * 2 + 1];
      if (r == EMPTY) break;
      if ((uint32_t)idx[i * 2] == tag) {
        ref = r;
        touched ^= rec[(r >> 1) * 16 + 6];
        break;
      }
      i = (i + 1) & t->mask;
    }
    keys[b + 4] = ref;
    keys[b + 5] = (int32_t)i;
  }
  for (int b = 0; b < end; b += KEY_STRIDE) {
    int32_t ref = keys[b + 4];
    if (ref < 0) continue;
    if (ct_matches(t, ref, (uint32_t)keys[b + 3], keys[b], keys[b + 1], keys[b + 2])) hits++;
    else { /* tag collision: go on probing after it */
      uint32_t tag = ct_tag(t, (uint32_t)keys[b + 3], keys[b], keys[b + 1], keys[b + 2]);
      uint32_t i = ((uint32_t)keys[b + 5] + 1) & t->mask;
      keys[b + 4] = -1;
      for (;;) {
        int32_t r = idx[i * 2 + 1];
        if (r == EMPTY) break;
        if ((uint32_t)idx[i * 2] == tag && ct_matches(t, r, (uint32_t)keys[b + 3], keys[b], keys[b + 1], keys[b + 2])) {
          keys[b + 4] = r;
          hits++;
          break;
        }
        i = (i + 1) & t->mask;
      }
    }
  }
  t->touched = touched;
  t->searched += n;
  t->found += hits;
  return hits;
}

/* -------------------------------------------------------------- wire */
static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline int32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return (int32_t)__builtin_bswap32(v);
}
static inline void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, int32_t v) {
  uint32_t x = __builtin_bswap32((uint32_t)v);
  memcpy(p, &x, 4);
}
static inline uint32_t d32(int32_t m, int32_t m2) {
  uint32_t a = ~(uint32_t)m, b = (uint32_t)m2;
  return (a >> 16) + (a & 0xffff) + (b >> 16) + (b & 0xffff);
}
static inline uint32_t csum_apply(uint32_t hc, uint32_t sum) {
  uint32_t s = (~hc & 0xffff) + sum;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}
static uint8_t icmp_query[256];

/* NatRewriter.translate */
static int translate(const ct_t *t, uint8_t *b, uint32_t l3, int32_t flow, int dir) {
  const int32_t *o = &t->rec[flow * 16 + (dir == 0 ? 3 : 0)];
  int32_t n_dst = o[0], n_src = o[1], op = o[2];
  int32_t n_ports = (int32_t)(((uint32_t)op << 16) | ((uint32_t)op >> 16));
  int32_t c_src = rd32(b + l3 + 12), c_dst = rd32(b + l3 + 16);
  uint32_t proto = b[l3 + 9];
  uint32_t l4 = l3 + ((b[l3] & 15u) << 2);
  int kind = 0;
  int32_t c_ports = n_ports;
  if ((rd16(b + l3 + 6) & 0x1fff) == 0) {
    if (proto == 6) kind = 1, c_ports = rd32(b + l4);
    else if (proto == 17) kind = 2, c_ports = rd32(b + l4);
    else if (proto == 1 && icmp_query[b[l4]]) {
      uint32_t id = rd16(b + l4 + 4);
      kind = 3, c_ports = (int32_t)((id << 16) | id);
    }
  }
  if (c_src == n_src && c_dst == n_dst && c_ports == n_ports) return 0;
  uint32_t d_addr = d32(c_src, n_src) + d32(c_dst, n_dst);
  wr16(b + l3 + 10, csum_apply(rd16(b + l3 + 10), d_addr));
  wr32(b + l3 + 12, n_src);
  wr32(b + l3 + 16, n_dst);
  if (kind == 1) {
    wr16(b + l4 + 16, csum_apply(rd16(b + l4 + 16), d_addr + d32(c_ports, n_ports)));
    wr32(b + l4, n_ports);
  } else if (kind == 2) {
    uint32_t hc = rd16(b + l4 + 6);
    if (hc != 0) {
      uint32_t c = csum_apply(hc, d_addr + d32(c_ports, n_ports));
      wr16(b + l4 + 6, c ? c : 0xffff);
    }
    wr32(b + l4, n_ports);
  } else if (kind == 3) {
    uint32_t n_id = (uint32_t)n_ports & 0xffff;
    wr16(b + l4 + 2, csum_apply(rd16(b + l4 + 2), (~(uint32_t)c_ports & 0xffff) + n_id));
    wr16(b + l4 + 4, n_id);
  }
  return 1;
}

/* ------------------------------------------------------------- bench */
static uint32_t prng_state;
static uint32_t prng(void) { /* mulberry32, as bench/nat.ts */
  uint32_t t = (prng_state += 0x6d2b79f5u);
  t = (t ^ (t >> 15)) * (t | 1);
  t ^= t + (t ^ (t >> 7)) * (t | 61);
  return t ^ (t >> 14);
}

static void flow_of(uint32_t i, uint32_t *src, uint32_t *sport, uint32_t *dst, uint32_t *dport, uint32_t *mapped) {
  *src = 0xac120002u + (i & 0x3ff);
  *sport = 32768 + (i >> 10);
  *dst = 0x5db8d800u + (i % 1021);
  *dport = (i & 1) == 0 ? 443 : 80;
  *mapped = 1024 + (i % 60000);
}

static void fill_table(ct_t *t, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    uint32_t s, sp, d, dp, m;
    flow_of(i, &s, &sp, &d, &dp, &m);
    if (ct_create(t, 6, (int32_t)s, (int32_t)d, (int32_t)((sp << 16) | dp), (int32_t)d, (int32_t)UPLINK,
                  (int32_t)((dp << 16) | m)) < 0) {
      fprintf(stderr, "flow %u refused\n", i);
      exit(1);
    }
  }
}

static uint32_t csum(const uint8_t *b, uint32_t len, uint32_t init) {
  uint32_t s = init;
  for (uint32_t i = 0; i + 1 < len; i += 2) s += rd16(b + i);
  if (len & 1) s += (uint32_t)b[len - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

static void write_frame(uint8_t *b, uint32_t i) {
  uint32_t s, sp, d, dp, m;
  flow_of(i, &s, &sp, &d, &dp, &m);
  static const uint8_t eth[14] = {0x02, 0x42, 0x7e, 0x5c, 0x1a, 0x01, 0x02, 0x42, 0xac, 0x12, 0, 2, 0x08, 0x00};
  memcpy(b, eth, 14);
  uint8_t *ip = b + 14;
  uint8_t iph[12] = {0x45, 0, 0, 50, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0};
  memcpy(ip, iph, 12);
  wr32(ip + 12, (int32_t)s);
  wr32(ip + 16, (int32_t)d);
  wr16(ip + 10, csum(ip, 20, 0));
  uint8_t *tcp = ip + 20;
  uint8_t th[20] = {0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0x50, 0x18, 0xfa, 0xf0, 0, 0, 0, 0};
  memcpy(tcp, th, 20);
  wr16(tcp, sp);
  wr16(tcp + 2, dp);
  for (uint32_t k = 0; k < 10; k++) tcp[20 + k] = (uint8_t)(i + k);
  uint32_t ph = (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + 6 + 30;
  wr16(tcp + 16, csum(tcp, 30, ph));
}

static int32_t keys[BATCH * KEY_STRIDE];

static uint32_t round_bulk(ct_t *t, uint8_t *bytes, const uint32_t *offsets, const uint32_t *lengths,
                           const uint32_t *handles, uint32_t n) {
  uint32_t ok = 0;
  for (uint32_t base = 0; base < n; base += BATCH) {
    uint32_t end = n < base + BATCH ? n : base + BATCH;
    int m = 0;
    for (uint32_t k = base; k < end; k++) {
      uint32_t h = handles[k], o = offsets[h];
      if (lengths[h] < 54 || rd16(bytes + o + 12) != 0x0800) continue;
      uint32_t l3 = o + 14, vi = bytes[l3];
      if ((vi >> 4) != 4 || (vi & 15) < 5) continue;
      keys[m] = rd32(bytes + l3 + 12);
      keys[m + 1] = rd32(bytes + l3 + 16);
      keys[m + 2] = rd32(bytes + l3 + ((vi & 15) << 2));
      keys[m + 3] = bytes[l3 + 9];
      keys[m + 7] = (int32_t)l3;
      m += KEY_STRIDE;
    }
    ct_lookup_bulk(t, keys, m / KEY_STRIDE);
    for (int b = 0; b < m; b += KEY_STRIDE) {
      int32_t ref = keys[b + 4];
      if (ref >= 0 && translate(t, bytes, (uint32_t)keys[b + 7], ref >> 1, ref & 1)) ok++;
    }
  }
  return ok;
}

static uint32_t round_simple(ct_t *t, uint8_t *bytes, const uint32_t *offsets, const uint32_t *lengths,
                             const uint32_t *handles, uint32_t n) {
  uint32_t ok = 0;
  for (uint32_t k = 0; k < n; k++) {
    uint32_t h = handles[k], o = offsets[h];
    if (lengths[h] < 54 || rd16(bytes + o + 12) != 0x0800) continue;
    uint32_t l3 = o + 14, vi = bytes[l3];
    if ((vi >> 4) != 4 || (vi & 15) < 5) continue;
    uint32_t l4 = l3 + ((vi & 15) << 2);
    int32_t ref = ct_find(t, bytes[l3 + 9], rd32(bytes + l3 + 12), rd32(bytes + l3 + 16), rd32(bytes + l4));
    if (ref < 0) continue;
    if (translate(t, bytes, l3, ref >> 1, ref & 1)) ok++;
  }
  return ok;
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

#define POOL_FRAMES 4096u

static double run_case(uint32_t n, double seconds, int simple, double *p50) {
  ct_t t;
  ct_init(&t, CAPACITY, SEED);
  fill_table(&t, n);
  /* one prepared frame per flow, flows in a random order */
  uint32_t *order = malloc(n * 4);
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  prng_state = SEED;
  for (uint32_t i = n - 1; i > 0; i--) {
    uint32_t j = prng() % (i + 1), x = order[i];
    order[i] = order[j], order[j] = x;
  }
  uint8_t *prepared = aligned_alloc(64, (size_t)n * FRAME);
  for (uint32_t k = 0; k < n; k++) write_frame(prepared + (size_t)k * FRAME, order[k]);
  /* they pass through a pool of POOL_FRAMES slots (handed out 0, 1, 2, ... as by the JS pool), loaded between rounds */
  uint32_t F = n < POOL_FRAMES ? n : POOL_FRAMES;
  size_t poolsz = (size_t)F * SLOT;
  uint8_t *bytes = aligned_alloc(64, poolsz);
  memset(bytes, 0, poolsz);
  uint32_t *offsets = malloc(F * 4), *lengths = malloc(F * 4), *handles = malloc(F * 4);
  for (uint32_t k = 0; k < F; k++) {
    offsets[k] = k * SLOT + HEADROOM;
    lengths[k] = FRAME;
    handles[k] = k;
  }
  uint32_t next = 0;
  size_t max_rounds = 1u << 16, rounds = 0;
  double *times = malloc(max_rounds * sizeof(double));
  double frames = 0, ns = 0;
  while (ns < seconds * 1e9) {
    for (uint32_t k = 0; k < F; k++) { /* load the next F prepared frames (outside the clock) */
      memcpy(bytes + offsets[handles[k]], prepared + (size_t)next * FRAME, FRAME);
      if (++next == n) next = 0;
    }
    double t0 = now_ns();
    uint32_t ok = simple ? round_simple(&t, bytes, offsets, lengths, handles, F)
                         : round_bulk(&t, bytes, offsets, lengths, handles, F);
    double dt = now_ns() - t0;
    if (ok != F) {
      fprintf(stderr, "cnat: %u of %u frames translated\n", ok, F);
      exit(1);
    }
    ns += dt;
    if (rounds < max_rounds) times[rounds++] = dt;
    frames += F;
  }
  qsort(times, rounds, sizeof(double), cmp_double);
  *p50 = F / times[rounds / 2] * 1e3;
  free(times), free(prepared), free(bytes), free(offsets), free(lengths), free(handles), free(order);
  free(t.idx), free(t.rec), free(t.mark), free(t.free_ids);
  return frames / ns * 1e3;
}

static double rss_mb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

int main(int argc, char **argv) {
  double seconds = 1;
  uint32_t flows[16] = {1000, 100000};
  int nflows = 2, simple = 0, rss = 0;
  for (int i = 0; i < 256; i++) icmp_query[i] = 0;
  icmp_query[0] = icmp_query[8] = icmp_query[13] = icmp_query[14] = 1;
  icmp_query[15] = icmp_query[16] = icmp_query[17] = icmp_query[18] = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "--seconds=", 10)) seconds = atof(a + 10);
    else if (!strncmp(a, "--flows=", 8)) {
      nflows = 0;
      const char *s = a + 8;
      while (*s && nflows < 16) {
        char *end;
        flows[nflows++] = (uint32_t)strtoul(s, &end, 10);
        if (*end != ',') break;
        s = end + 1;
      }
    } else if (!strcmp(a, "--simple")) simple = 1;
    else if (!strcmp(a, "--rss")) rss = 1;
    else {
      fprintf(stderr, "unknown argument %s\n", a);
      return 2;
    }
  }
  if (rss) {
    double before = rss_mb();
    ct_t t;
    ct_init(&t, CAPACITY, SEED);
    fill_table(&t, 100000);
    double after = rss_mb();
    double table = ((double)t.slots * 8 + (double)CAPACITY * (64 + 4 + 4)) / 1048576.0;
    printf("{\"rssMB\":%.3f,\"tableMB\":%.3f}\n", after - before, table);
    return 0;
  }
  double p50;
  run_case(1000, seconds < 0.3 ? seconds : 0.3, simple, &p50); /* warm-up, as the JS side */
  printf("[");
  for (int i = 0; i < nflows; i++) {
    double mpps = run_case(flows[i], seconds, simple, &p50);
    printf("%s{\"flows\":%u,\"mpps\":%.3f,\"p50\":%.3f}", i ? "," : "", flows[i], mpps, p50);
  }
  printf("]\n");
  return 0;
}
