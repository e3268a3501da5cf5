/* Internals of `embargo export` shared by the policy walk (export.c) and
 * the format writers (export_formats.c). Not part of any other module's API. */
#ifndef EMBARGO_PROXY_EXPORT_INT_H
#define EMBARGO_PROXY_EXPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "filters/policy-t.h"

#define EXPORT_HOLES_MAX 16 /* carved-out names kept per item */

/* What one exported entry matches, with Embargo's meaning. */
enum item_kind {
  ITEM_EXACT,  /* "x": the name itself */
  ITEM_STRICT, /* "*.x": names strictly below x */
  ITEM_INCL,   /* ".x": x and the names below it */
  ITEM_GLOB,   /* a label glob with '*' (x is the whole pattern): cannot be listed */
  ITEM_NET     /* a network prefix "a.b.c.d/n" or "v6/n" */
};

/* A name or network under an item whose verdict differs (a more specific
 * rule, or an exception): what a format must leave out of the item. */
struct hole {
  enum item_kind kind;
  char text[256];     /* base name (or pattern, or prefix) */
  enum action action; /* Embargo's action there */
};

struct item {
  enum item_kind kind;
  char text[256];          /* base name, pattern or prefix, without "*." or "." */
  enum action action;      /* ACTION_DENY or ACTION_LOG */
  const struct rule *rule; /* the vendor rule it comes from */
  struct hole holes[EXPORT_HOLES_MAX];
  size_t nholes;
  bool holes_overflow; /* more holes than kept */
};

/* One output format: whether it can say an item, and how to write it. */
struct export_format {
  const char *name;
  const char *comment; /* "#" or ";" */
  bool names;          /* host rules are its business (the others are not exported) */
  bool networks;       /* network rules are */
  /* NULL when ITEM can be written with Embargo's meaning, else the reason
   * it cannot ("rpz cannot ..."). */
  const char *(*refuse)(const struct item *item);
  void (*begin)(FILE *out, int64_t now);
  void (*write)(FILE *out, const struct item *item);
  void (*end)(FILE *out);
};

/* "rpz|unbound|dnsmasq|hosts|nft-set|squid". */
const char *export_format_names(void);

#endif
