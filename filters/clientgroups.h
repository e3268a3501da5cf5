/* Client groups: named sets of client networks, and the set of groups a
 * client's address is in, found with one longest-prefix lookup. Networks
 * of different groups may overlap and nest. Pure: no I/O. A set of groups
 * is a bit mask, bit I for the I-th group added. */
#ifndef EMBARGO_FILTERS_CLIENTGROUPS_H
#define EMBARGO_FILTERS_CLIENTGROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "filters/netmatch.h"

#define CLIENTGROUPS_MAX          64   /* groups: the bits of a mask */
#define CLIENTGROUPS_MAX_NETWORKS 4096 /* networks of all groups, each once */

struct clientgroups;

struct clientgroups *clientgroups_new(void);
void clientgroups_free(struct clientgroups *g); /* NULL-safe */

/* Adds group NAME (copied); *INDEX receives its index. 0, EMB_EDUPLICATE
 * for a name added before, EMB_ETOOBIG past CLIENTGROUPS_MAX, -ENOMEM. */
int clientgroups_add(struct clientgroups *g, const char *name, size_t *index);
/* Adds NET to group INDEX (an index clientgroups_add gave). 0,
 * EMB_EDUPLICATE if the group has it already, EMB_ETOOBIG past
 * CLIENTGROUPS_MAX_NETWORKS distinct networks, -ENOMEM. O(networks). */
int clientgroups_add_network(struct clientgroups *g, size_t index, const struct cidr *net);

size_t clientgroups_count(const struct clientgroups *g);
/* Group I's name, or NULL past the end. */
const char *clientgroups_name(const struct clientgroups *g, size_t i);
/* The index of group NAME, or -1. */
int clientgroups_find(const struct clientgroups *g, const char *name);
/* The name of the first group of MASK, or NULL for none. */
const char *clientgroups_first(const struct clientgroups *g, uint64_t mask);
/* Group I's networks as added, comma-separated, into BUF (cut to SIZE). */
void clientgroups_networks(const struct clientgroups *g, size_t i, char *buf, size_t size);
/* The names of the groups of MASK joined by ", " into BUF ("" for none). */
void clientgroups_format(const struct clientgroups *g, uint64_t mask, char *buf, size_t size);

/* The groups a client at ADDR (4 bytes for AF_INET, 16 for AF_INET6) is
 * in: those one of whose networks holds it. O(address bits). */
uint64_t clientgroups_of(const struct clientgroups *g, int family, const uint8_t *addr);

#endif
