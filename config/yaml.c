/* libyaml's document API behind a small interface with positions. */
#define _POSIX_C_SOURCE 200809L

#include "config/yaml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "filters/err.h"

struct ydoc {
  yaml_document_t doc;
  char *file;
};

/* Plain scalars YAML reads as null; a quoted "" or "null" is a string. */
static const char *const null_words[] = {"", "~", "null", "Null", "NULL"};

/* libyaml takes non-const documents even for reads. */
static yaml_node_t *node_at(const struct ydoc *d, int index) {
  return yaml_document_get_node((yaml_document_t *)&d->doc, index);
}

static const yaml_node_t *as_node(const struct ynode *n) {
  return (const yaml_node_t *)n;
}

static int syntax_error(const char *file, const yaml_parser_t *parser, char *err,
                        size_t errsize) {
  if (parser->error == YAML_MEMORY_ERROR)
    return -ENOMEM;
  const yaml_mark_t *m = &parser->problem_mark;
  const char *problem = parser->problem != NULL ? parser->problem : "malformed YAML";
  if (parser->context != NULL)
    snprintf(err, errsize, "%s:%zu:%zu: syntax error: %s (%s)", file, m->line + 1,
             m->column + 1, problem, parser->context);
  else
    snprintf(err, errsize, "%s:%zu:%zu: syntax error: %s", file, m->line + 1, m->column + 1,
             problem);
  return EMB_ECONFIG;
}

/* A config file holds one document; a second one is almost always a stray
 * "---" that would silently hide everything after it. */
static int check_single(const char *file, yaml_parser_t *parser, char *err, size_t errsize) {
  yaml_document_t extra;
  if (!yaml_parser_load(parser, &extra))
    return syntax_error(file, parser, err, errsize);
  yaml_node_t *root = yaml_document_get_root_node(&extra);
  int rc = 0;
  if (root != NULL) {
    snprintf(err, errsize, "%s:%zu:%zu: syntax error: expected a single YAML document", file,
             root->start_mark.line + 1, root->start_mark.column + 1);
    rc = EMB_ECONFIG;
  }
  yaml_document_delete(&extra);
  return rc;
}

#define YAML_MAX_DEPTH 64

/* Refuses documents nested deeper than YAML_MAX_DEPTH before building them:
 * libyaml's scanner spends time in proportion to the nesting on every token,
 * so a small file of brackets could stall loading for hours. Stops at the
 * first event past the limit. Syntax errors are left for the real load. */
static int check_depth(const char *file, const char *data, size_t len, char *err,
                       size_t errsize) {
  yaml_parser_t parser;
  yaml_event_t ev;
  int depth = 0, rc = 0;
  bool done = false;

  if (!yaml_parser_initialize(&parser))
    return -ENOMEM;
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  while (!done && rc == 0 && yaml_parser_parse(&parser, &ev)) {
    if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
      depth++;
    else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
      depth--;
    if (depth > YAML_MAX_DEPTH) {
      snprintf(err, errsize, "%s:%zu:%zu: syntax error: nested deeper than %d levels", file,
               ev.start_mark.line + 1, ev.start_mark.column + 1, YAML_MAX_DEPTH);
      rc = EMB_ECONFIG;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  return rc;
}

int ydoc_load(const char *file, const char *data, size_t len, struct ydoc **out, char *err,
              size_t errsize) {
  yaml_parser_t parser;
  bool have_doc = false;
  int rc = check_depth(file, data, len, err, errsize);
  struct ydoc *d;
  if (rc != 0)
    return rc;
  rc = -ENOMEM;
  d = calloc(1, sizeof(*d));
  if (d == NULL || (d->file = strdup(file)) == NULL || !yaml_parser_initialize(&parser)) {
    if (d != NULL)
      free(d->file);
    free(d);
    return -ENOMEM;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  if (!yaml_parser_load(&parser, &d->doc)) {
    rc = syntax_error(file, &parser, err, errsize);
    goto cleanup;
  }
  have_doc = true;
  rc = check_single(file, &parser, err, errsize);
cleanup:
  yaml_parser_delete(&parser);
  if (rc < 0) {
    if (have_doc)
      yaml_document_delete(&d->doc);
    free(d->file);
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void ydoc_free(struct ydoc *d) {
  if (d == NULL)
    return;
  yaml_document_delete(&d->doc);
  free(d->file);
  free(d);
}

const char *ydoc_file(const struct ydoc *d) {
  return d->file;
}

const struct ynode *ydoc_root(const struct ydoc *d) {
  return (const struct ynode *)yaml_document_get_root_node((yaml_document_t *)&d->doc);
}

enum ynode_kind ynode_kind(const struct ynode *n) {
  const yaml_node_t *node = as_node(n);
  switch (node->type) {
  case YAML_SEQUENCE_NODE: return YNODE_LIST;
  case YAML_MAPPING_NODE: return YNODE_MAP;
  case YAML_SCALAR_NODE: break;
  default: return YNODE_NULL;
  }
  if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return YNODE_SCALAR;
  for (size_t i = 0; i < sizeof(null_words) / sizeof(null_words[0]); i++) {
    if (strcmp((const char *)node->data.scalar.value, null_words[i]) == 0)
      return YNODE_NULL;
  }
  return YNODE_SCALAR;
}

const char *ynode_text(const struct ynode *n) {
  const yaml_node_t *node = as_node(n);
  return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

size_t ynode_len(const struct ynode *n) {
  const yaml_node_t *node = as_node(n);
  return node->type == YAML_SCALAR_NODE ? node->data.scalar.length : 0;
}

size_t ynode_count(const struct ynode *n) {
  const yaml_node_t *node = as_node(n);
  if (node->type == YAML_SEQUENCE_NODE)
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
  if (node->type == YAML_MAPPING_NODE)
    return (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
  return 0;
}

const struct ynode *ynode_item(const struct ydoc *d, const struct ynode *n, size_t i) {
  return (const struct ynode *)node_at(d, as_node(n)->data.sequence.items.start[i]);
}

const struct ynode *ynode_key(const struct ydoc *d, const struct ynode *n, size_t i) {
  return (const struct ynode *)node_at(d, as_node(n)->data.mapping.pairs.start[i].key);
}

const struct ynode *ynode_value(const struct ydoc *d, const struct ynode *n, size_t i) {
  return (const struct ynode *)node_at(d, as_node(n)->data.mapping.pairs.start[i].value);
}

struct origin ynode_origin(const struct ydoc *d, const struct ynode *n) {
  const yaml_mark_t *m = &as_node(n)->start_mark;
  return (struct origin){.file = d->file, .line = (unsigned)m->line + 1,
                         .col = (unsigned)m->column + 1};
}
