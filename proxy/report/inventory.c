/* The inventory behind `embargo report`: attempts per vendor and client. */
#include "proxy/report/inventory.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/timefmt.h"

#define MS_PER_DAY 86400000LL

/* ---- strings ---------------------------------------------------------- */

/* Copies at most MAX bytes of S into BUF (MAX + 4 bytes), cut on a UTF-8
 * character boundary and marked "..." when cut. */
static void bounded_copy(char *buf, const char *s, size_t max) {
  size_t len = strlen(s);
  if (len <= max) {
    memcpy(buf, s, len + 1);
    return;
  }
  len = max;
  while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
    len--; /* s[len] continues a character: cut before that character */
  memcpy(buf, s, len);
  memcpy(buf + len, "...", 4);
}

/* ---- hash table ------------------------------------------------------- */

static uint64_t hash_str(uint64_t seed, const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (; *s != '\0'; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  /* splitmix64 finaliser: spreads FNV's weak low bits over the table */
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

static struct inventory_map_slot *map_find(const struct inventory_map *m, const char *key,
                                           uint64_t h) {
  size_t i;
  if (m->cap == 0)
    return NULL;
  for (i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    struct inventory_map_slot *s = &m->slots[i];
    if (s->val == NULL || (s->hash == h && strcmp(s->key, key) == 0))
      return s;
  }
}

static int map_grow(struct inventory_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 16, i;
  struct inventory_map old = *m;
  struct inventory_map_slot *slots = calloc(cap, sizeof(*slots));
  if (slots == NULL)
    return -ENOMEM;
  m->slots = slots;
  m->cap = cap;
  for (i = 0; i < old.cap; i++)
    if (old.slots[i].val != NULL)
      *map_find(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
  free(old.slots);
  return 0;
}

/* The value under KEY, or NULL. */
static void *map_get(const struct inventory_map *m, const char *key) {
  struct inventory_map_slot *s = map_find(m, key, hash_str(m->seed, key));
  return s != NULL ? s->val : NULL;
}

/* Adds VAL under KEY (borrowed from VAL); KEY must not be present. */
static int map_put(struct inventory_map *m, const char *key, void *val) {
  uint64_t h = hash_str(m->seed, key);
  struct inventory_map_slot *s;
  if ((m->len + 1) * 10 > m->cap * 7 && map_grow(m) != 0)
    return -ENOMEM;
  s = map_find(m, key, h);
  s->hash = h;
  s->key = key;
  s->val = val;
  m->len++;
  return 0;
}

/* Collects the values of M into a new array of M->len pointers. */
static void **map_values(const struct inventory_map *m) {
  void **out = malloc((m->len ? m->len : 1) * sizeof(*out));
  size_t i, n = 0;
  if (out == NULL)
    return NULL;
  for (i = 0; i < m->cap; i++)
    if (m->slots[i].val != NULL)
      out[n++] = m->slots[i].val;
  return out;
}

/* ---- bounded lists ---------------------------------------------------- */

/* Grows *ARR (of *ALLOC elements of SIZE bytes) to hold one more, up to CAP. */
static int grow_array(void *arr, uint32_t *alloc, size_t size, uint32_t cap) {
  uint32_t want = *alloc ? *alloc * 2 : 4;
  void *p;
  if (want > cap)
    want = cap;
  p = realloc(*(void **)arr, want * size);
  if (p == NULL)
    return -ENOMEM;
  *(void **)arr = p;
  *alloc = want;
  return 0;
}

/* Adds VALUE to S unless present; past CAP values it is only counted. */
static int set_add(struct inventory_set *s, const char *value, uint32_t cap) {
  char v[INVENTORY_VALUE_MAX + 4];
  uint32_t i;

  if (value == NULL || value[0] == '\0')
    return 0;
  bounded_copy(v, value, INVENTORY_VALUE_MAX);
  for (i = 0; i < s->n; i++)
    if (strcmp(s->items[i], v) == 0)
      return 0;
  if (s->n == cap) {
    s->not_kept++;
    return 0;
  }
  if (s->n == s->alloc && grow_array(&s->items, &s->alloc, sizeof(*s->items), cap) != 0)
    return -ENOMEM;
  if ((s->items[s->n] = strdup(v)) == NULL)
    return -ENOMEM;
  s->n++;
  return 0;
}

static void set_free(struct inventory_set *s) {
  uint32_t i;
  for (i = 0; i < s->n; i++)
    free(s->items[i]);
  free(s->items);
}

static int client_add_category(struct inventory_client *c, const char *name, bool after) {
  char v[INVENTORY_NAME_MAX + 4];
  uint32_t i;

  bounded_copy(v, name, INVENTORY_NAME_MAX);
  for (i = 0; i < c->ncats && strcmp(c->cats[i].name, v) != 0; i++)
    ;
  if (i == c->ncats) {
    if (i == INVENTORY_MAX_CATEGORIES) {
      c->cats_not_kept++;
      return 0;
    }
    if (i == c->cats_alloc &&
        grow_array(&c->cats, &c->cats_alloc, sizeof(*c->cats), INVENTORY_MAX_CATEGORIES) != 0)
      return -ENOMEM;
    if ((c->cats[i].name = strdup(v)) == NULL)
      return -ENOMEM;
    c->cats[i].attempts = c->cats[i].after_cutoff = 0;
    c->ncats++;
  }
  c->cats[i].attempts++;
  c->cats[i].after_cutoff += after;
  return 0;
}

static int vendor_add_cutoff(struct inventory_vendor *v, const char *name, int64_t cutoff,
                             bool after, bool denied) {
  char cat[INVENTORY_NAME_MAX + 4];
  struct inventory_cutoff *k;
  uint32_t i;

  bounded_copy(cat, name, INVENTORY_NAME_MAX);
  for (i = 0; i < v->ncutoffs; i++)
    if (v->cutoffs[i].cutoff_ms == cutoff && strcmp(v->cutoffs[i].category, cat) == 0)
      break;
  if (i == v->ncutoffs) {
    if (i == INVENTORY_MAX_CUTOFFS) {
      v->cutoffs_not_kept++;
      return 0;
    }
    if (i == v->cutoffs_alloc &&
        grow_array(&v->cutoffs, &v->cutoffs_alloc, sizeof(*v->cutoffs), INVENTORY_MAX_CUTOFFS) != 0)
      return -ENOMEM;
    k = &v->cutoffs[i];
    if ((k->category = strdup(cat)) == NULL)
      return -ENOMEM;
    k->cutoff_ms = cutoff;
    k->attempts = k->after_cutoff = k->denied = 0;
    v->ncutoffs++;
  }
  v->cutoffs[i].attempts++;
  v->cutoffs[i].after_cutoff += after;
  v->cutoffs[i].denied += denied;
  return 0;
}

/* Counts one attempt on DAY; days are kept sorted (logs mostly append). */
static int vendor_add_day(struct inventory_vendor *v, int64_t day) {
  uint32_t lo = 0, hi = v->ndays;
  if (hi > 0 && v->days[hi - 1].day < day)
    lo = hi;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (v->days[mid].day < day)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < v->ndays && v->days[lo].day == day) {
    v->days[lo].attempts++;
    return 0;
  }
  if (v->ndays == INVENTORY_MAX_DAYS) {
    v->days_not_kept++;
    return 0;
  }
  if (v->ndays == v->days_alloc &&
      grow_array(&v->days, &v->days_alloc, sizeof(*v->days), INVENTORY_MAX_DAYS) != 0)
    return -ENOMEM;
  memmove(&v->days[lo + 1], &v->days[lo], (v->ndays - lo) * sizeof(*v->days));
  v->days[lo].day = day;
  v->days[lo].attempts = 1;
  v->ndays++;
  return 0;
}

/* ---- records ---------------------------------------------------------- */

static void client_free(struct inventory_client *c) {
  uint32_t i;
  if (c == NULL)
    return;
  for (i = 0; i < c->ncats; i++)
    free(c->cats[i].name);
  free(c->cats);
  set_free(&c->destinations);
  set_free(&c->ja4);
  set_free(&c->agents);
  free(c->addr);
  free(c);
}

static void vendor_free(struct inventory_vendor *v) {
  size_t i;
  if (v == NULL)
    return;
  for (i = 0; i < v->clients.cap; i++)
    client_free(v->clients.slots[i].val);
  free(v->clients.slots);
  for (i = 0; i < v->ncutoffs; i++)
    free(v->cutoffs[i].category);
  free(v->cutoffs);
  free(v->days);
  free(v->id);
  free(v);
}

static struct inventory_vendor *vendor_get(struct inventory *inv, const char *id) {
  char key[INVENTORY_NAME_MAX + 4];
  struct inventory_vendor *v;

  bounded_copy(key, id, INVENTORY_NAME_MAX);
  if ((v = map_get(&inv->vendors, key)) != NULL)
    return v;
  if ((v = calloc(1, sizeof(*v))) == NULL || (v->id = strdup(key)) == NULL)
    goto fail;
  v->clients.seed = inv->vendors.seed;
  v->first_ms = INT64_MAX;
  v->last_ms = INT64_MIN;
  if (map_put(&inv->vendors, v->id, v) != 0)
    goto fail;
  return v;
fail:
  vendor_free(v);
  return NULL;
}

static struct inventory_client *client_get(struct inventory_vendor *v, const char *text) {
  char key[INVENTORY_NAME_MAX + 4];
  struct inventory_client *c;

  if (text == NULL)
    snprintf(key, sizeof(key), "unknown");
  else if (inventory_client_addr(text, key, sizeof(key)) != 0)
    bounded_copy(key, text, INVENTORY_NAME_MAX);
  if ((c = map_get(&v->clients, key)) != NULL)
    return c;
  if ((c = calloc(1, sizeof(*c))) == NULL || (c->addr = strdup(key)) == NULL)
    goto fail;
  c->first_ms = INT64_MAX;
  c->last_ms = INT64_MIN;
  if (map_put(&v->clients, c->addr, c) != 0)
    goto fail;
  return c;
fail:
  client_free(c);
  return NULL;
}

static bool fact_after_cutoff(const struct inventory_fact *f) {
  if (f->after_cutoff >= 0)
    return f->after_cutoff == 1;
  return f->cutoff_ms != INVENTORY_TIME_NONE && f->time_ms >= f->cutoff_ms;
}

static bool fact_passes(const struct inventory_filter *flt, const struct inventory_fact *f) {
  if (flt->vendor != NULL && strcmp(flt->vendor, f->vendor) != 0)
    return false;
  if (flt->since_ms != INVENTORY_TIME_NONE && f->time_ms < flt->since_ms)
    return false;
  return flt->until_ms == INVENTORY_TIME_NONE || f->time_ms < flt->until_ms;
}

static void update_span(int64_t *first, int64_t *last, int64_t t) {
  if (t < *first)
    *first = t;
  if (t > *last)
    *last = t;
}

static int client_add(struct inventory_client *c, const struct inventory_fact *f, bool after) {
  size_t i;
  int rc = 0;

  update_span(&c->first_ms, &c->last_ms, f->time_ms);
  c->attempts++;
  c->after_cutoff += after;
  if (f->category != NULL)
    rc |= client_add_category(c, f->category, after);
  rc |= set_add(&c->destinations, f->host, INVENTORY_MAX_DESTINATIONS);
  for (i = 0; i < f->nsni && i < INVENTORY_FACT_SNI_MAX; i++)
    rc |= set_add(&c->destinations, f->sni[i], INVENTORY_MAX_DESTINATIONS);
  rc |= set_add(&c->ja4, f->ja4, INVENTORY_MAX_JA4);
  rc |= set_add(&c->agents, f->user_agent, INVENTORY_MAX_AGENTS);
  return rc != 0 ? -ENOMEM : 0;
}

int inventory_add(struct inventory *inv, const struct inventory_fact *f) {
  struct inventory_vendor *v;
  struct inventory_client *c;
  bool after = fact_after_cutoff(f);
  int rc = 0;

  if (!fact_passes(&inv->filter, f)) {
    inv->counts.outside++;
    return 1;
  }
  if ((v = vendor_get(inv, f->vendor)) == NULL || (c = client_get(v, f->client)) == NULL)
    return -ENOMEM;
  update_span(&inv->first_ms, &inv->last_ms, f->time_ms);
  update_span(&v->first_ms, &v->last_ms, f->time_ms);
  inv->counts.attempts++;
  v->attempts++;
  v->after_cutoff += after;
  if (f->category != NULL)
    rc |= vendor_add_cutoff(v, f->category, f->cutoff_ms, after, f->denied == 1);
  rc |= vendor_add_day(v, inventory_day_of(f->time_ms));
  rc |= client_add(c, f, after);
  return rc != 0 ? -ENOMEM : 0;
}

void inventory_init(struct inventory *inv, const struct inventory_filter *filter, uint64_t seed) {
  memset(inv, 0, sizeof(*inv));
  inv->filter = *filter;
  inv->vendors.seed = seed;
  inv->first_ms = INT64_MAX;
  inv->last_ms = INT64_MIN;
}

void inventory_free(struct inventory *inv) {
  size_t i;
  for (i = 0; i < inv->vendors.cap; i++)
    vendor_free(inv->vendors.slots[i].val);
  free(inv->vendors.slots);
  memset(inv, 0, sizeof(*inv));
}

/* ---- times and addresses ---------------------------------------------- */

int inventory_parse_time(const char *text, size_t len, int64_t *out_ms) {
  int64_t secs, ms = 0;
  size_t i;
  int scale = 100;

  if (rfc3339_parse(text, len, &secs) != 0)
    return EMB_EBADTIME;
  /* rfc3339_parse checked the layout: a fraction starts right after the seconds. */
  if (len > 20 && text[19] == '.')
    for (i = 20; i < len && i < 23 && text[i] >= '0' && text[i] <= '9'; i++, scale /= 10)
      ms += (text[i] - '0') * scale;
  *out_ms = secs * 1000 + ms;
  return 0;
}

static int64_t floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t inventory_day_of(int64_t ms) {
  return floor_div(ms, MS_PER_DAY);
}

char *inventory_format_time(int64_t ms, char *buf, size_t size) {
  int64_t secs = floor_div(ms, 1000);
  char s[40];
  rfc3339_format(secs, s, sizeof(s));
  s[19] = '\0'; /* drop the 'Z' */
  snprintf(buf, size, "%s.%03dZ", s, (int)(ms - secs * 1000));
  return buf;
}

char *inventory_format_day(int64_t day, char *buf, size_t size) {
  char s[40];
  rfc3339_format(day * 86400, s, sizeof(s));
  snprintf(buf, size, "%.10s", s);
  return buf;
}

int inventory_client_addr(const char *text, char *out, size_t size) {
  char ip[INET6_ADDRSTRLEN + 8];
  const char *end, *colon;
  unsigned char bin[16];
  size_t len;

  out[0] = '\0';
  if (text[0] == '[') { /* "[v6]:port" */
    text++;
    end = strchr(text, ']');
  } else if ((colon = strchr(text, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
    end = colon; /* "v4:port" */
  } else {
    end = text + strlen(text); /* a bare address */
  }
  if (end == NULL || (len = (size_t)(end - text)) >= sizeof(ip))
    return EMB_EBADIP;
  memcpy(ip, text, len);
  ip[len] = '\0';
  if (inet_pton(AF_INET, ip, bin) == 1)
    return inet_ntop(AF_INET, bin, out, (socklen_t)size) ? 0 : EMB_EBADIP;
  if (inet_pton(AF_INET6, ip, bin) != 1)
    return EMB_EBADIP;
  if (memcmp(bin, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
    return inet_ntop(AF_INET, bin + 12, out, (socklen_t)size) ? 0 : EMB_EBADIP;
  return inet_ntop(AF_INET6, bin, out, (socklen_t)size) ? 0 : EMB_EBADIP;
}

/* ---- sorted views ----------------------------------------------------- */

static int cmp_vendor(const void *a, const void *b) {
  const struct inventory_vendor *x = *(const struct inventory_vendor *const *)a;
  const struct inventory_vendor *y = *(const struct inventory_vendor *const *)b;
  return strcmp(x->id, y->id);
}

static int cmp_client(const void *a, const void *b) {
  const struct inventory_client *x = *(const struct inventory_client *const *)a;
  const struct inventory_client *y = *(const struct inventory_client *const *)b;
  if (x->attempts != y->attempts)
    return x->attempts > y->attempts ? -1 : 1;
  return strcmp(x->addr, y->addr);
}

static void **sorted_values(const struct inventory_map *m, size_t *n,
                            int (*cmp)(const void *, const void *)) {
  void **out;
  *n = 0;
  if (m->len == 0)
    return NULL;
  if ((out = map_values(m)) == NULL) {
    *n = SIZE_MAX;
    return NULL;
  }
  qsort(out, m->len, sizeof(*out), cmp);
  *n = m->len;
  return out;
}

struct inventory_vendor **inventory_vendors(const struct inventory *inv, size_t *n) {
  return (struct inventory_vendor **)sorted_values(&inv->vendors, n, cmp_vendor);
}

struct inventory_client **inventory_clients(const struct inventory_vendor *v, size_t *n) {
  return (struct inventory_client **)sorted_values(&v->clients, n, cmp_client);
}

size_t inventory_client_count(const struct inventory_vendor *v) {
  return v->clients.len;
}

size_t inventory_category_clients(const struct inventory_vendor *v, const char *category,
                                  bool *partial) {
  char cat[INVENTORY_NAME_MAX + 4];
  size_t n = 0;
  bounded_copy(cat, category, INVENTORY_NAME_MAX);
  *partial = false;
  for (size_t i = 0; i < v->clients.cap; i++) {
    const struct inventory_client *c = v->clients.slots[i].val;
    if (c == NULL)
      continue;
    *partial = *partial || c->cats_not_kept > 0;
    for (uint32_t k = 0; k < c->ncats; k++) {
      if (strcmp(c->cats[k].name, cat) == 0) {
        n++;
        break;
      }
    }
  }
  return n;
}
