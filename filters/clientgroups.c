/* Client groups. Each distinct network is kept once, with every group that
 * names it and every group one of whose networks holds it: the prefixes
 * holding one address nest, so the longest of them carries all of that
 * address's groups, and a lookup is one longest-prefix match. */
#define _POSIX_C_SOURCE 200809L
#include "filters/clientgroups.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"

struct group_net {
  struct cidr net;
  uint64_t groups;   /* every group that holds it */
  uint64_t declared; /* the groups that name it */
};

struct clientgroups {
  char *names[CLIENTGROUPS_MAX]; /* owned */
  size_t n;
  struct group_net *nets; /* in the order added; the matcher's data is index + 1 */
  size_t nnets, cap;
  struct netmatch *match;
};

struct clientgroups *clientgroups_new(void) {
  struct clientgroups *g = calloc(1, sizeof(*g));
  if (g != NULL && (g->match = netmatch_new()) == NULL) {
    free(g);
    return NULL;
  }
  return g;
}

void clientgroups_free(struct clientgroups *g) {
  if (g == NULL)
    return;
  for (size_t i = 0; i < g->n; i++)
    free(g->names[i]);
  free(g->nets);
  netmatch_free(g->match);
  free(g);
}

int clientgroups_find(const struct clientgroups *g, const char *name) {
  for (size_t i = 0; i < g->n; i++) {
    if (strcmp(g->names[i], name) == 0)
      return (int)i;
  }
  return -1;
}

int clientgroups_add(struct clientgroups *g, const char *name, size_t *index) {
  if (clientgroups_find(g, name) >= 0)
    return EMB_EDUPLICATE;
  if (g->n == CLIENTGROUPS_MAX)
    return EMB_ETOOBIG;
  if ((g->names[g->n] = strdup(name)) == NULL)
    return -ENOMEM;
  *index = g->n++;
  return 0;
}

/* The network equal to NET, or NULL. */
static struct group_net *find_net(const struct clientgroups *g, const struct cidr *net) {
  for (size_t i = 0; i < g->nnets; i++) {
    if (g->nets[i].net.bits == net->bits && cidr_contains(&g->nets[i].net, net))
      return &g->nets[i];
  }
  return NULL;
}

/* Adds NET, in the groups of every network holding it. NULL on failure
 * (*RC set). */
static struct group_net *new_net(struct clientgroups *g, const struct cidr *net, int *rc) {
  if (g->nnets == CLIENTGROUPS_MAX_NETWORKS) {
    *rc = EMB_ETOOBIG;
    return NULL;
  }
  *rc = -ENOMEM;
  if (g->nnets == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 16;
    struct group_net *nets = realloc(g->nets, cap * sizeof(*nets));
    if (nets == NULL)
      return NULL;
    g->nets = nets;
    g->cap = cap;
  }
  struct group_net *n = &g->nets[g->nnets];
  *n = (struct group_net){.net = *net};
  for (size_t i = 0; i < g->nnets; i++) {
    if (cidr_contains(&g->nets[i].net, net))
      n->groups |= g->nets[i].groups;
  }
  if ((*rc = netmatch_add(g->match, net, (void *)(uintptr_t)(g->nnets + 1))) < 0)
    return NULL;
  g->nnets++;
  return n;
}

int clientgroups_add_network(struct clientgroups *g, size_t index, const struct cidr *net) {
  const uint64_t bit = UINT64_C(1) << index;
  int rc = 0;
  struct group_net *n = find_net(g, net);
  if (n != NULL && (n->declared & bit))
    return EMB_EDUPLICATE;
  if (n == NULL && (n = new_net(g, net, &rc)) == NULL)
    return rc;
  n->declared |= bit;
  /* NET and the networks inside it are in group INDEX. */
  for (size_t i = 0; i < g->nnets; i++) {
    if (cidr_contains(net, &g->nets[i].net))
      g->nets[i].groups |= bit;
  }
  return 0;
}

size_t clientgroups_count(const struct clientgroups *g) {
  return g->n;
}

const char *clientgroups_name(const struct clientgroups *g, size_t i) {
  return i < g->n ? g->names[i] : NULL;
}

const char *clientgroups_first(const struct clientgroups *g, uint64_t mask) {
  return mask != 0 ? clientgroups_name(g, (size_t)__builtin_ctzll(mask)) : NULL;
}

void clientgroups_networks(const struct clientgroups *g, size_t i, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t k = 0; k < g->nnets && used < size; k++) {
    char text[64];
    if (!(g->nets[k].declared & (UINT64_C(1) << i)))
      continue;
    cidr_format(&g->nets[k].net, text, sizeof(text));
    used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", text);
  }
}

void clientgroups_format(const struct clientgroups *g, uint64_t mask, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < g->n && used < size; i++) {
    if (mask & (UINT64_C(1) << i))
      used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", g->names[i]);
  }
}

uint64_t clientgroups_of(const struct clientgroups *g, int family, const uint8_t *addr) {
  uintptr_t i = (uintptr_t)netmatch_lookup(g->match, family, addr, NULL);
  return i != 0 ? g->nets[i - 1].groups : 0;
}
