/* A small strict JSON reader (RFC 8259) and writer, for safetensors headers and checkpoint
 * metadata. The reader builds a tree of nodes addressed by index; it accepts exactly one value
 * surrounded by whitespace, valid UTF-8 only, no duplicate object keys, no "\u0000" (keys and
 * strings are C strings), nesting at most JSON_MAX_DEPTH deep. Its memory is bounded by the
 * text: at most one node per byte and one byte of string storage per byte. */
#ifndef FFNC_JSON_H
#define FFNC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "ffnc.h"

#define JSON_MAX_DEPTH 64
#define JSON_NONE SIZE_MAX

typedef enum json_type {
    JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

typedef struct json_node {
    json_type type;
    size_t key;     /* object members: offset of the key in the string pool; else JSON_NONE */
    size_t value;   /* strings: offset in the pool; numbers: offset of the literal in the text */
    size_t length;  /* strings: bytes (without the NUL); numbers: literal length */
    size_t count;   /* arrays and objects: number of children */
    size_t first;   /* arrays and objects: index of the first child, or JSON_NONE */
    size_t next;    /* the next sibling, or JSON_NONE */
} json_node;

typedef struct json_doc {
    const char *text;
    size_t text_len;
    json_node *nodes;  /* nodes[0] is the root */
    size_t n_nodes, cap_nodes;
    char *pool;        /* decoded strings, each NUL-terminated */
    size_t pool_len;
} json_doc;

/* Parses text[0, len). FFNC_ERR_FORMAT for anything but one well-formed value,
 * FFNC_ERR_OUT_OF_MEMORY. On success free with json_free (on failure nothing is left). */
ffnc_status json_parse(const char *text, size_t len, json_doc *doc);
void json_free(json_doc *doc);

static inline const json_node *json_root(const json_doc *doc) { return &doc->nodes[0]; }
static inline const json_node *json_at(const json_doc *doc, size_t index) {
    return index == JSON_NONE ? NULL : &doc->nodes[index];
}
static inline const json_node *json_first(const json_doc *doc, const json_node *n) {
    return json_at(doc, n->first);
}
static inline const json_node *json_next(const json_doc *doc, const json_node *n) {
    return json_at(doc, n->next);
}
static inline const char *json_key(const json_doc *doc, const json_node *n) {
    return doc->pool + n->key;
}
static inline const char *json_str(const json_doc *doc, const json_node *n) {
    return doc->pool + n->value;
}

/* The member `key` of object `obj`, or NULL (also when obj is not an object). */
const json_node *json_get(const json_doc *doc, const json_node *obj, const char *key);
/* A number node that is a non-negative integer literal (no fraction, no exponent) fitting in
 * uint64_t: 1 and *out set; else 0. */
int json_uint(const json_doc *doc, const json_node *n, uint64_t *out);
/* A number node's value as a double (finite): 1 and *out set; else 0. */
int json_double(const json_doc *doc, const json_node *n, double *out);
/* 1 when `s` (NUL-terminated, n bytes) is valid UTF-8. */
int json_utf8_valid(const char *s, size_t n);

/* A growable output buffer for writing JSON; every function returns FFNC_OK or
 * FFNC_ERR_OUT_OF_MEMORY and leaves `data` NUL-terminated. */
typedef struct json_buf {
    char *data;
    size_t len, cap;
} json_buf;

ffnc_status json_put_raw(json_buf *b, const char *s);
/* A JSON string literal: quotes, escapes for '"', '\\' and control characters. */
ffnc_status json_put_string(json_buf *b, const char *s);
/* The shortest of %.15g, %.16g, %.17g that reads back as the same double; must be finite. */
ffnc_status json_put_double(json_buf *b, double x);
ffnc_status json_put_uint(json_buf *b, uint64_t x);
void json_buf_free(json_buf *b);

#endif
