/*
 * cswitch — the anchor for bench/switch.ts: the learning-switch loop of
 * src/switch/learning-switch.ts written plainly in C, to be built with
 * `cc -O2`. Same pool layout (2 KiB slots, 128 B headroom, offsets/lengths/
 * inPort arrays), same SPSC rings of uint32 handles, same per-frame checks
 * (runt, oversize with VLAN allowance, bad source MAC, hairpin, port down),
 * same MAC table (open addressing, linear probing, keyed multiply-shift hash
 * over the two MAC halves, 16-byte records of lo, hi|port, last-seen), same
 * flooding code (never taken in the bench), same traffic and the same
 * timing rule (only the process() calls are timed; frames are recycled from
 * tx rings to rx rings between rounds, outside the clock).
 *
 * Usage: cswitch --seconds=1 --ports=4 --frames=512 --batch=256
 *                --sizes=64,1500 --macs=16,4096
 * Prints JSON: [{"size":64,"macs":16,"mpps":...,"p50":...}, ...] — mpps is
 * frames / total process() time, p50 the median round's rate.
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
static void pool_free(pool_t *p, uint32_t h) { p->stack[p->top++] = h; }
static int64_t pool_clone(pool_t *p, uint32_t h) {
  int64_t c = pool_alloc(p);
  if (c < 0) return -1;
  memcpy(p->bytes + p->offsets[c], p->bytes + p->offsets[h], p->lengths[h]);
  p->lengths[c] = p->lengths[h];
  p->inport[c] = p->inport[h];
  return c;
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
static inline int64_t ring_pop(ring_t *r) {
  if (r->head == r->tail) return -1;
  return r->slots[r->head++ & r->mask];
}
static inline uint32_t ring_pop_into(ring_t *r, uint32_t *out, uint32_t max) {
  uint32_t n = r->tail - r->head;
  if (n > max) n = max;
  for (uint32_t i = 0; i < n; i++) out[i] = r->slots[(r->head + i) & r->mask];
  r->head += n;
  return n;
}

/* ---------------------------------------------------------------- port */
typedef struct {
  uint16_t id;
  uint32_t mtu;
  int up;
  ring_t rx, tx;
} port_t;

/* ----------------------------------------------------------- MAC table */
/* one 16-byte record per slot: lo, hi | port << 16 (-1 = empty), seen (f64) */
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
/* keyed multiply-shift, as MacTable.hash */
static inline uint32_t table_hash(const mactable_t *t, int32_t hi, int32_t lo) {
  return (((uint32_t)(lo ^ t->k0) * 0x9e3779b1u) ^ ((uint32_t)(hi ^ t->k1) * 0x85ebca77u)) >> t->shift;
}
/* port for (hi, lo) or -1 */
static inline int32_t table_find(const mactable_t *t, int32_t hi, int32_t lo) {
  uint32_t i = table_hash(t, hi, lo);
  for (;;) {
    int32_t w = t->rec[i].hi_port;
    if (w == EMPTY) return -1;
    if ((w & 0xffff) == hi && t->rec[i].lo == lo) return (int32_t)((uint32_t)w >> 16);
    i = (i + 1) & t->mask;
  }
}
/* insert / refresh / move; 0 when the table is full */
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

/* -------------------------------------------------------------- switch */
enum { R_RUNT, R_OVERSIZE, R_BADSRC, R_RINGFULL, R_POOLEMPTY, R_TABLEFULL, R_HAIRPIN, R_PORTDOWN, R_N };

typedef struct {
  pool_t *pool;
  mactable_t table;
  port_t **members;
  uint32_t nmembers;
  ring_t *tx_by_id[65536];
  int32_t max_len[65536]; /* mtu + 18, 0 = down / not attached */
  uint32_t *buf;
  uint32_t batch;
  uint32_t *flood_to;
  double rx_packets, rx_bytes, tx_packets, tx_bytes, drops;
  double reasons[R_N];
} switch_t;

static inline void sw_drop(switch_t *sw, uint32_t h, int reason) {
  pool_free(sw->pool, h);
  sw->drops++;
  sw->reasons[reason]++;
}

static inline int tagged(const uint8_t *f) {
  return (f[12] == 0x81 && f[13] == 0x00) || (f[12] == 0x88 && f[13] == 0xa8);
}

static uint32_t sw_flood(switch_t *sw, uint32_t h, uint32_t len, uint32_t skip, const uint8_t *f) {
  uint32_t k = 0, sent = 0, tag = tagged(f) ? 4 : 0;
  for (uint32_t j = 0; j < sw->nmembers; j++) {
    if (j == skip) continue;
    port_t *p = sw->members[j];
    if (!p->up) continue;
    if (len > p->mtu + 18 + tag) {
      sw->drops++;
      sw->reasons[R_OVERSIZE]++;
      continue;
    }
    sw->flood_to[k++] = j;
  }
  if (k == 0) {
    pool_free(sw->pool, h);
    return 0;
  }
  for (uint32_t j = 0; j + 1 < k; j++) {
    int64_t c = pool_clone(sw->pool, h);
    if (c < 0) {
      sw->drops++;
      sw->reasons[R_POOLEMPTY]++;
      continue;
    }
    if (ring_push(&sw->members[sw->flood_to[j]]->tx, (uint32_t)c)) sent++;
    else sw_drop(sw, (uint32_t)c, R_RINGFULL);
  }
  if (ring_push(&sw->members[sw->flood_to[k - 1]]->tx, h)) sent++;
  else sw_drop(sw, h, R_RINGFULL);
  return sent;
}

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline int32_t rd32(const uint8_t *p) {
  return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
}

static void sw_process(switch_t *sw, double now) {
  pool_t *pool = sw->pool;
  const uint8_t *bytes = pool->bytes;
  const uint32_t *offsets = pool->offsets, *lengths = pool->lengths;
  mactable_t *t = &sw->table;
  uint32_t *buf = sw->buf;
  double rxp = 0, rxb = 0, txp = 0, txb = 0;
  for (uint32_t j = 0; j < sw->nmembers; j++) {
    port_t *p = sw->members[j];
    sw->max_len[p->id] = p->up ? (int32_t)p->mtu + 18 : 0;
  }
  for (uint32_t pi = 0; pi < sw->nmembers; pi++) {
    port_t *ip = sw->members[pi];
    uint16_t in_id = ip->id;
    uint32_t in_max = (uint32_t)sw->max_len[in_id];
    if (in_max == 0) continue;
    for (;;) {
      uint32_t n = ring_pop_into(&ip->rx, buf, sw->batch);
      if (n == 0) break;
      for (uint32_t i = 0; i < n; i++) {
        uint32_t h = buf[i];
        uint32_t len = lengths[h];
        rxp++;
        rxb += len;
        if (len < 14) {
          sw_drop(sw, h, R_RUNT);
          continue;
        }
        const uint8_t *f = bytes + offsets[h];
        if (len > in_max && (len > in_max + 4 || !tagged(f))) {
          sw_drop(sw, h, R_OVERSIZE);
          continue;
        }
        int32_t s_hi = (int32_t)rd16(f + 6);
        int32_t s_lo = rd32(f + 8);
        if ((s_hi & 0x100) || (s_hi | s_lo) == 0) {
          sw_drop(sw, h, R_BADSRC);
          continue;
        }
        if (!table_learn(t, s_hi, s_lo, in_id, now)) sw->reasons[R_TABLEFULL]++;
        int32_t d_hi = (int32_t)rd16(f);
        if ((d_hi & 0x100) == 0) {
          int32_t out_id = table_find(t, d_hi, rd32(f + 2));
          if (out_id >= 0) {
            if (out_id == in_id) {
              sw_drop(sw, h, R_HAIRPIN);
              continue;
            }
            uint32_t out_max = (uint32_t)sw->max_len[out_id];
            if (out_max == 0) {
              sw_drop(sw, h, R_PORTDOWN);
              continue;
            }
            if (len > out_max && (len > out_max + 4 || !tagged(f))) {
              sw_drop(sw, h, R_OVERSIZE);
              continue;
            }
            if (ring_push(sw->tx_by_id[out_id], h)) {
              txp++;
              txb += len;
            } else sw_drop(sw, h, R_RINGFULL);
            continue;
          }
        }
        uint32_t sent = sw_flood(sw, h, len, pi, f);
        txp += sent;
        txb += (double)len * sent;
      }
      if (n < sw->batch) break;
    }
  }
  sw->rx_packets += rxp;
  sw->rx_bytes += rxb;
  sw->tx_packets += txp;
  sw->tx_bytes += txb;
}

/* --------------------------------------------------------------- bench */
static uint64_t mac_of(uint32_t i) { return 0x020000000000ull + ((i * 0x9e37u) & 0xffffffu); }

static void write_frame(pool_t *p, uint32_t h, uint64_t dst, uint64_t src, uint32_t len) {
  uint8_t *b = p->bytes + p->offsets[h];
  for (int i = 0; i < 6; i++) {
    b[i] = (uint8_t)(dst >> (8 * (5 - i)));
    b[6 + i] = (uint8_t)(src >> (8 * (5 - i)));
  }
  b[12] = 0x08;
  b[13] = 0x00;
  for (uint32_t i = 14; i < len; i++) b[i] = (uint8_t)i;
  p->lengths[h] = len;
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

static double run_case(uint32_t size, uint32_t nmacs, double seconds, uint32_t P, uint32_t F, uint32_t batch,
                       double *p50) {
  uint32_t ring_size = 2;
  while (ring_size < 2 * F) ring_size *= 2;
  pool_t pool;
  pool_init(&pool, P * F + 4 * 256 + 64);
  switch_t *sw = calloc(1, sizeof(switch_t));
  sw->pool = &pool;
  table_init(&sw->table, nmacs * 2 > 8192 ? nmacs * 2 : 8192, 0x5eed);
  sw->batch = batch;
  sw->buf = calloc(batch, 4);
  sw->flood_to = calloc(65536, 4);
  port_t *ports = calloc(P, sizeof(port_t));
  sw->members = calloc(P, sizeof(port_t *));
  for (uint32_t i = 0; i < P; i++) {
    ports[i].id = (uint16_t)(i + 1);
    ports[i].mtu = 1500;
    ports[i].up = 1;
    ring_init(&ports[i].rx, ring_size);
    ring_init(&ports[i].tx, ring_size);
    sw->members[i] = &ports[i];
    sw->tx_by_id[i + 1] = &ports[i].tx;
  }
  sw->nmembers = P;
  /* learn every MAC */
  for (uint32_t i = 0; i < nmacs; i++) {
    int64_t h = pool_alloc(&pool);
    write_frame(&pool, (uint32_t)h, 0xffffffffffffull, mac_of(i), 60);
    port_t *p = &ports[i % P];
    ring_push(&p->rx, (uint32_t)h);
    if (i % 256 == 255 || i == nmacs - 1) { /* flood clones stay within the pool */
      sw_process(sw, 0);
      for (uint32_t q = 0; q < P; q++)
        for (int64_t x = ring_pop(&ports[q].tx); x >= 0; x = ring_pop(&ports[q].tx)) pool_free(&pool, (uint32_t)x);
    }
  }
  if (sw->table.size != nmacs) {
    fprintf(stderr, "learned %u of %u MACs\n", sw->table.size, nmacs);
    exit(1);
  }
  uint32_t per_port = nmacs / P > 0 ? nmacs / P : 1;
  for (uint32_t p = 0; p < P; p++) {
    for (uint32_t k = 0; k < F; k++) {
      uint32_t s = ((k % per_port) * P + p) % nmacs;
      uint32_t d = (((k * 7 + 3) % per_port) * P + ((p + 1) % P)) % nmacs;
      int64_t h = pool_alloc(&pool);
      write_frame(&pool, (uint32_t)h, mac_of(d), mac_of(s), size);
      ring_push(&ports[p].rx, (uint32_t)h);
    }
  }
  sw->rx_packets = sw->tx_packets = sw->drops = 0;
  uint32_t *tmp = calloc(ring_size, 4);
  double frames = 0, proc_ns = 0, now = 1;
  const double round = (double)P * F;
  size_t max_rounds = 1u << 22, rounds = 0;
  double *times = malloc(max_rounds * sizeof(double));
  while (proc_ns < seconds * 1e9) {
    double t0 = now_ns();
    sw_process(sw, now);
    double dt = now_ns() - t0;
    proc_ns += dt;
    if (rounds < max_rounds) times[rounds++] = dt;
    frames += round;
    for (uint32_t q = 0; q < P; q++) {
      uint32_t n = ring_pop_into(&ports[q].tx, tmp, ring_size);
      ring_t *back = &ports[(q + P - 1) % P].rx;
      for (uint32_t i = 0; i < n; i++) ring_push(back, tmp[i]);
    }
    now += 0.01;
  }
  if (sw->drops != 0 || sw->rx_packets != frames || sw->tx_packets != frames) {
    fprintf(stderr, "cswitch lost frames: rx %.0f tx %.0f drops %.0f expected %.0f\n", sw->rx_packets, sw->tx_packets,
            sw->drops, frames);
    exit(1);
  }
  qsort(times, rounds, sizeof(double), cmp_double);
  *p50 = round / times[rounds / 2] * 1e3;
  free(times);
  /* release (the process exits soon anyway, but keep it tidy) */
  for (uint32_t i = 0; i < P; i++) {
    free(ports[i].rx.slots);
    free(ports[i].tx.slots);
  }
  free(ports);
  free(sw->members);
  free(sw->buf);
  free(sw->flood_to);
  free(sw->table.rec);
  free(sw->table.statics);
  free(sw);
  free(tmp);
  free(pool.bytes);
  free(pool.offsets);
  free(pool.lengths);
  free(pool.inport);
  free(pool.stack);
  return frames / proc_ns * 1e3;
}

static int parse_list(const char *s, uint32_t *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end;
    out[n++] = (uint32_t)strtoul(s, &end, 10);
    if (*end != ',') break;
    s = end + 1;
  }
  return n;
}

int main(int argc, char **argv) {
  double seconds = 1;
  uint32_t P = 4, F = 512, batch = 256;
  uint32_t sizes[16] = {64, 1500}, macs[16] = {16, 4096};
  int nsizes = 2, nmacs = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "--seconds=", 10)) seconds = atof(a + 10);
    else if (!strncmp(a, "--ports=", 8)) P = (uint32_t)atoi(a + 8);
    else if (!strncmp(a, "--frames=", 9)) F = (uint32_t)atoi(a + 9);
    else if (!strncmp(a, "--batch=", 8)) batch = (uint32_t)atoi(a + 8);
    else if (!strncmp(a, "--sizes=", 8)) nsizes = parse_list(a + 8, sizes, 16);
    else if (!strncmp(a, "--macs=", 7)) nmacs = parse_list(a + 7, macs, 16);
    else {
      fprintf(stderr, "unknown argument %s\n", a);
      return 2;
    }
  }
  double p50;
  run_case(64, 16, seconds < 0.3 ? seconds : 0.3, P, F, batch, &p50); /* warm-up, same as the JS side */
  printf("[");
  int first = 1;
  for (int i = 0; i < nsizes; i++)
    for (int j = 0; j < nmacs; j++) {
      double mpps = run_case(sizes[i], macs[j], seconds, P, F, batch, &p50);
      printf("%s{\"size\":%u,\"macs\":%u,\"mpps\":%.3f,\"p50\":%.3f}", first ? "" : ",", sizes[i], macs[j], mpps, p50);
      first = 0;
    }
  printf("]\n");
  return 0;
}
