/*
 * cswitch — the anchor for bench/switch.ts: the learning-switch loop of
 * src/switch/learning-switch.ts written plainly in C, to be built with
 * `cc -O2`. Same pool layout (2 KiB slots, 128 B headroom, offsets/lengths/
 * inPort arrays), same SPSC rings of uint32 handles, same per-frame checks
 * (runt, oversize with VLAN allowance, bad source MAC), same MAC table
 * (open addressing, linear probing, keyed multiply-xorshift hash over the
 * two MAC halves, hi/lo keys, port + last-seen), same traffic and the same
 * timing rule (only the process() calls are timed; frames are recycled from
 * tx rings to rx rings between rounds, outside the clock).
 *
 * Usage: cswitch --seconds=1 --ports=4 --frames=512 --batch=256
 *                --sizes=64,1500 --macs=16,4096
 * Prints JSON: [{"size":64,"macs":16,"mpps":...}, ...]
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
typedef struct {
  uint32_t capacity, slots, mask, size;
  int32_t *key_hi, *key_lo;
  uint16_t *ports;
  double *seen;
  uint8_t *statics;
  int32_t k0, k1;
} mactable_t;

static void table_init(mactable_t *t, uint32_t capacity, int32_t seed) {
  uint32_t slots = 2;
  while (slots < 2 * capacity) slots *= 2;
  t->capacity = capacity;
  t->slots = slots;
  t->mask = slots - 1;
  t->size = 0;
  t->key_hi = malloc(slots * 4);
  for (uint32_t i = 0; i < slots; i++) t->key_hi[i] = EMPTY;
  t->key_lo = calloc(slots, 4);
  t->ports = calloc(slots, 2);
  t->seen = calloc(slots, 8);
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
  uint32_t h = ((uint32_t)(lo ^ t->k0) * 0x9e3779b1u) ^ ((uint32_t)(hi ^ t->k1) * 0x85ebca77u);
  h ^= h >> 15;
  h *= 0x2c1b3c6du;
  h ^= h >> 13;
  return h & t->mask;
}
static inline int64_t table_find(const mactable_t *t, int32_t hi, int32_t lo) {
  uint32_t i = table_hash(t, hi, lo);
  for (;;) {
    int32_t kh = t->key_hi[i];
    if (kh == hi && t->key_lo[i] == lo) return i;
    if (kh == EMPTY) return -1;
    i = (i + 1) & t->mask;
  }
}
static inline int table_learn(mactable_t *t, int32_t hi, int32_t lo, uint16_t port, double now) {
  uint32_t i = table_hash(t, hi, lo);
  for (;;) {
    int32_t kh = t->key_hi[i];
    if (kh == hi && t->key_lo[i] == lo) {
      if (!t->statics[i]) {
        t->ports[i] = port;
        t->seen[i] = now;
      }
      return 1;
    }
    if (kh == EMPTY) {
      if (t->size >= t->capacity) return 0;
      t->key_hi[i] = hi;
      t->key_lo[i] = lo;
      t->ports[i] = port;
      t->seen[i] = now;
      t->statics[i] = 0;
      t->size++;
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
  port_t *by_id[65536];
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

static uint32_t sw_flood(switch_t *sw, uint32_t h, uint32_t len, uint32_t skip, uint32_t tag) {
  uint32_t k = 0, sent = 0;
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

static void sw_process(switch_t *sw, double now) {
  pool_t *pool = sw->pool;
  const uint8_t *bytes = pool->bytes;
  const uint32_t *offsets = pool->offsets, *lengths = pool->lengths;
  uint16_t *inport = pool->inport;
  mactable_t *t = &sw->table;
  uint32_t *buf = sw->buf;
  double rxp = 0, rxb = 0, txp = 0, txb = 0;
  for (uint32_t pi = 0; pi < sw->nmembers; pi++) {
    port_t *ip = sw->members[pi];
    uint16_t in_id = ip->id;
    uint32_t in_max = ip->mtu + 18;
    for (;;) {
      uint32_t n = ring_pop_into(&ip->rx, buf, sw->batch);
      if (n == 0) break;
      for (uint32_t i = 0; i < n; i++) {
        uint32_t h = buf[i];
        uint32_t len = lengths[h];
        rxp++;
        rxb += len;
        inport[h] = in_id;
        if (len < 14) {
          sw_drop(sw, h, R_RUNT);
          continue;
        }
        const uint8_t *f = bytes + offsets[h];
        uint32_t tag = ((f[12] == 0x81 && f[13] == 0x00) || (f[12] == 0x88 && f[13] == 0xa8)) ? 4 : 0;
        if (len > in_max + tag) {
          sw_drop(sw, h, R_OVERSIZE);
          continue;
        }
        int32_t s_hi = (f[6] << 8) | f[7];
        int32_t s_lo = (int32_t)(((uint32_t)f[8] << 24) | ((uint32_t)f[9] << 16) | ((uint32_t)f[10] << 8) | f[11]);
        if ((f[6] & 1) || (s_hi | s_lo) == 0) {
          sw_drop(sw, h, R_BADSRC);
          continue;
        }
        if (!table_learn(t, s_hi, s_lo, in_id, now)) sw->reasons[R_TABLEFULL]++;
        if ((f[0] & 1) == 0) {
          int32_t d_hi = (f[0] << 8) | f[1];
          int32_t d_lo = (int32_t)(((uint32_t)f[2] << 24) | ((uint32_t)f[3] << 16) | ((uint32_t)f[4] << 8) | f[5]);
          int64_t slot = table_find(t, d_hi, d_lo);
          if (slot >= 0) {
            uint16_t out_id = t->ports[slot];
            if (out_id == in_id) {
              sw_drop(sw, h, R_HAIRPIN);
              continue;
            }
            port_t *op = sw->by_id[out_id];
            if (!op || !op->up) {
              sw_drop(sw, h, R_PORTDOWN);
              continue;
            }
            if (len > op->mtu + 18 + tag) {
              sw_drop(sw, h, R_OVERSIZE);
              continue;
            }
            if (ring_push(&op->tx, h)) {
              txp++;
              txb += len;
            } else sw_drop(sw, h, R_RINGFULL);
            continue;
          }
        }
        uint32_t sent = sw_flood(sw, h, len, pi, tag);
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

static double run_case(uint32_t size, uint32_t nmacs, double seconds, uint32_t P, uint32_t F, uint32_t batch) {
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
    sw->by_id[i + 1] = &ports[i];
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
  while (proc_ns < seconds * 1e9) {
    double t0 = now_ns();
    sw_process(sw, now);
    proc_ns += now_ns() - t0;
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
  /* release (the process exits soon anyway, but keep it tidy) */
  for (uint32_t i = 0; i < P; i++) {
    free(ports[i].rx.slots);
    free(ports[i].tx.slots);
  }
  free(ports);
  free(sw->members);
  free(sw->buf);
  free(sw->flood_to);
  free(sw->table.key_hi);
  free(sw->table.key_lo);
  free(sw->table.ports);
  free(sw->table.seen);
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
  run_case(64, 16, seconds < 0.3 ? seconds : 0.3, P, F, batch); /* warm-up, same as the JS side */
  printf("[");
  int first = 1;
  for (int i = 0; i < nsizes; i++)
    for (int j = 0; j < nmacs; j++) {
      double mpps = run_case(sizes[i], macs[j], seconds, P, F, batch);
      printf("%s{\"size\":%u,\"macs\":%u,\"mpps\":%.3f}", first ? "" : ",", sizes[i], macs[j], mpps);
      first = 0;
    }
  printf("]\n");
  return 0;
}
