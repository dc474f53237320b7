/* The strict JSON reader and the small writer of json.h. */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct parser {
    json_doc *doc;
    size_t pos;
} parser;

static int at_end(const parser *p) { return p->pos >= p->doc->text_len; }
static unsigned char peek(const parser *p) {
    return at_end(p) ? 0 : (unsigned char)p->doc->text[p->pos];
}

static void skip_space(parser *p) {
    while (!at_end(p)) {
        unsigned char c = peek(p);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Appends a node; its index goes to *index. The count is bounded by the text length (every
 * value consumes at least one byte), so growth stops there. */
static ffnc_status new_node(parser *p, json_type type, size_t *index) {
    json_doc *d = p->doc;
    if (d->n_nodes == d->cap_nodes) {
        size_t cap = d->cap_nodes ? 2 * d->cap_nodes : 16;
        if (cap > d->text_len + 1) cap = d->text_len + 1;
        if (cap <= d->n_nodes) return FFNC_ERR_FORMAT;
        if (cap > SIZE_MAX / sizeof(json_node)) return FFNC_ERR_OUT_OF_MEMORY;
        json_node *nodes = realloc(d->nodes, cap * sizeof(json_node));
        if (!nodes) return FFNC_ERR_OUT_OF_MEMORY;
        d->nodes = nodes;
        d->cap_nodes = cap;
    }
    json_node *n = &d->nodes[d->n_nodes];
    *n = (json_node){type, JSON_NONE, 0, 0, 0, JSON_NONE, JSON_NONE};
    *index = d->n_nodes++;
    return FFNC_OK;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static ffnc_status read_hex4(parser *p, unsigned *out) {
    if (p->doc->text_len - p->pos < 4) return FFNC_ERR_FORMAT;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value((unsigned char)p->doc->text[p->pos + (size_t)i]);
        if (h < 0) return FFNC_ERR_FORMAT;
        v = v * 16 + (unsigned)h;
    }
    p->pos += 4;
    *out = v;
    return FFNC_OK;
}

static void put_utf8(char *dst, size_t *len, unsigned cp) {
    if (cp < 0x80) {
        dst[(*len)++] = (char)cp;
    } else if (cp < 0x800) {
        dst[(*len)++] = (char)(0xC0 | (cp >> 6));
        dst[(*len)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        dst[(*len)++] = (char)(0xE0 | (cp >> 12));
        dst[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[(*len)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        dst[(*len)++] = (char)(0xF0 | (cp >> 18));
        dst[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        dst[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[(*len)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Length of the valid UTF-8 sequence at s[0, n), or 0 (overlong forms, surrogates and code
 * points past U+10FFFF are invalid). */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return len;
}

int json_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence(u + i, n - i);
        if (len == 0) return 0;
        i += len;
    }
    return 1;
}

/* Decodes the string literal at pos (the opening quote) into the pool; *offset receives its
 * start. The pool was sized to the text length: a decoded string plus its NUL is never longer
 * than its literal with the quotes. */
static ffnc_status parse_string(parser *p, size_t *offset, size_t *length) {
    json_doc *d = p->doc;
    if (peek(p) != '"') return FFNC_ERR_FORMAT;
    p->pos++;
    size_t start = d->pool_len, len = start;
    char *pool = d->pool;
    for (;;) {
        if (at_end(p)) return FFNC_ERR_FORMAT;
        unsigned char c = peek(p);
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return FFNC_ERR_FORMAT;
        if (c != '\\') {
            size_t n = utf8_sequence((const unsigned char *)d->text + p->pos, d->text_len - p->pos);
            if (n == 0) return FFNC_ERR_FORMAT;
            memcpy(pool + len, d->text + p->pos, n);
            len += n;
            p->pos += n;
            continue;
        }
        p->pos++;
        if (at_end(p)) return FFNC_ERR_FORMAT;
        unsigned char e = peek(p);
        p->pos++;
        switch (e) {
        case '"': pool[len++] = '"'; break;
        case '\\': pool[len++] = '\\'; break;
        case '/': pool[len++] = '/'; break;
        case 'b': pool[len++] = '\b'; break;
        case 'f': pool[len++] = '\f'; break;
        case 'n': pool[len++] = '\n'; break;
        case 'r': pool[len++] = '\r'; break;
        case 't': pool[len++] = '\t'; break;
        case 'u': {
            unsigned cp;
            FFNC_TRY(read_hex4(p, &cp));
            if (cp >= 0xDC00 && cp <= 0xDFFF) return FFNC_ERR_FORMAT;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low;
                if (d->text_len - p->pos < 2 || d->text[p->pos] != '\\' ||
                    d->text[p->pos + 1] != 'u')
                    return FFNC_ERR_FORMAT;
                p->pos += 2;
                FFNC_TRY(read_hex4(p, &low));
                if (low < 0xDC00 || low > 0xDFFF) return FFNC_ERR_FORMAT;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (cp == 0) return FFNC_ERR_FORMAT;
            put_utf8(pool, &len, cp);
            break;
        }
        default: return FFNC_ERR_FORMAT;
        }
    }
    pool[len] = '\0';
    *offset = start;
    *length = len - start;
    d->pool_len = len + 1;
    return FFNC_OK;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static ffnc_status parse_number(parser *p, size_t index) {
    size_t start = p->pos;
    if (peek(p) == '-') p->pos++;
    if (peek(p) == '0') {
        p->pos++;
    } else if (is_digit(peek(p))) {
        while (is_digit(peek(p))) p->pos++;
    } else {
        return FFNC_ERR_FORMAT;
    }
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p))) return FFNC_ERR_FORMAT;
        while (is_digit(peek(p))) p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (!is_digit(peek(p))) return FFNC_ERR_FORMAT;
        while (is_digit(peek(p))) p->pos++;
    }
    p->doc->nodes[index].value = start;
    p->doc->nodes[index].length = p->pos - start;
    return FFNC_OK;
}

static ffnc_status parse_literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->doc->text_len - p->pos < n || memcmp(p->doc->text + p->pos, word, n) != 0)
        return FFNC_ERR_FORMAT;
    p->pos += n;
    return FFNC_OK;
}

static ffnc_status parse_value(parser *p, int depth, size_t *index);

/* Appends child `child` to container `parent` after `*last`. */
static void link_child(json_doc *d, size_t parent, size_t *last, size_t child) {
    if (*last == JSON_NONE) d->nodes[parent].first = child;
    else d->nodes[*last].next = child;
    *last = child;
    d->nodes[parent].count++;
}

static ffnc_status parse_array(parser *p, int depth, size_t index) {
    p->pos++; /* '[' */
    skip_space(p);
    size_t last = JSON_NONE;
    if (peek(p) == ']') {
        p->pos++;
        return FFNC_OK;
    }
    for (;;) {
        size_t child;
        FFNC_TRY(parse_value(p, depth + 1, &child));
        link_child(p->doc, index, &last, child);
        skip_space(p);
        unsigned char c = peek(p);
        p->pos++;
        if (c == ']') return FFNC_OK;
        if (c != ',') return FFNC_ERR_FORMAT;
    }
}

static ffnc_status parse_object(parser *p, int depth, size_t index) {
    json_doc *d = p->doc;
    p->pos++; /* '{' */
    skip_space(p);
    size_t last = JSON_NONE;
    if (peek(p) == '}') {
        p->pos++;
        return FFNC_OK;
    }
    for (;;) {
        size_t key, key_len, child;
        skip_space(p);
        FFNC_TRY(parse_string(p, &key, &key_len));
        skip_space(p);
        if (peek(p) != ':') return FFNC_ERR_FORMAT;
        p->pos++;
        FFNC_TRY(parse_value(p, depth + 1, &child));
        /* duplicate keys make a header ambiguous: rejected (quadratic, but headers are small
         * and each comparison is bounded by the text) */
        for (const json_node *m = json_first(d, &d->nodes[index]); m; m = json_next(d, m))
            if (strcmp(d->pool + m->key, d->pool + key) == 0) return FFNC_ERR_FORMAT;
        d->nodes[child].key = key;
        link_child(d, index, &last, child);
        skip_space(p);
        unsigned char c = peek(p);
        p->pos++;
        if (c == '}') return FFNC_OK;
        if (c != ',') return FFNC_ERR_FORMAT;
    }
}

static ffnc_status parse_value(parser *p, int depth, size_t *index) {
    if (depth > JSON_MAX_DEPTH) return FFNC_ERR_FORMAT;
    skip_space(p);
    if (at_end(p)) return FFNC_ERR_FORMAT;
    unsigned char c = peek(p);
    switch (c) {
    case '{':
        FFNC_TRY(new_node(p, JSON_OBJECT, index));
        return parse_object(p, depth, *index);
    case '[':
        FFNC_TRY(new_node(p, JSON_ARRAY, index));
        return parse_array(p, depth, *index);
    case '"': {
        FFNC_TRY(new_node(p, JSON_STRING, index));
        size_t offset, length;
        FFNC_TRY(parse_string(p, &offset, &length));
        p->doc->nodes[*index].value = offset;
        p->doc->nodes[*index].length = length;
        return FFNC_OK;
    }
    case 't':
        FFNC_TRY(new_node(p, JSON_TRUE, index));
        return parse_literal(p, "true");
    case 'f':
        FFNC_TRY(new_node(p, JSON_FALSE, index));
        return parse_literal(p, "false");
    case 'n':
        FFNC_TRY(new_node(p, JSON_NULL, index));
        return parse_literal(p, "null");
    default:
        FFNC_TRY(new_node(p, JSON_NUMBER, index));
        return parse_number(p, *index);
    }
}

void json_free(json_doc *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->pool);
    doc->nodes = NULL;
    doc->pool = NULL;
    doc->n_nodes = doc->cap_nodes = doc->pool_len = 0;
}

ffnc_status json_parse(const char *text, size_t len, json_doc *doc) {
    FFNC_REQUIRE(text && doc, FFNC_ERR_NULL_POINTER);
    *doc = (json_doc){text, len, NULL, 0, 0, NULL, 0};
    FFNC_REQUIRE(len > 0, FFNC_ERR_FORMAT);
    doc->pool = malloc(len + 1);
    if (!doc->pool) return FFNC_ERR_OUT_OF_MEMORY;
    parser p = {doc, 0};
    size_t root;
    ffnc_status s = parse_value(&p, 0, &root);
    if (s == FFNC_OK) {
        skip_space(&p);
        if (!at_end(&p)) s = FFNC_ERR_FORMAT;
    }
    if (s != FFNC_OK) json_free(doc);
    return s;
}

const json_node *json_get(const json_doc *doc, const json_node *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (const json_node *m = json_first(doc, obj); m; m = json_next(doc, m))
        if (strcmp(json_key(doc, m), key) == 0) return m;
    return NULL;
}

int json_uint(const json_doc *doc, const json_node *n, uint64_t *out) {
    if (!n || n->type != JSON_NUMBER) return 0;
    const char *s = doc->text + n->value;
    uint64_t v = 0;
    for (size_t i = 0; i < n->length; i++) {
        if (!is_digit((unsigned char)s[i])) return 0;
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) return 0;
        v = v * 10 + digit;
    }
    *out = v;
    return 1;
}

int json_double(const json_doc *doc, const json_node *n, double *out) {
    if (!n || n->type != JSON_NUMBER) return 0;
    char literal[128];
    if (n->length >= sizeof literal) return 0;
    memcpy(literal, doc->text + n->value, n->length);
    literal[n->length] = '\0';
    /* strtod reads the decimal point of the C locale the program set, JSON always has '.' */
    char point = localeconv()->decimal_point[0];
    if (point != '.' && point != '\0')
        for (char *c = literal; *c; c++)
            if (*c == '.') *c = point;
    char *end;
    errno = 0;
    double v = strtod(literal, &end);
    if (*end != '\0' || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* ---- writer -------------------------------------------------------------------------------- */

static ffnc_status reserve(json_buf *b, size_t extra) {
    FFNC_REQUIRE(extra < SIZE_MAX - b->len - 1, FFNC_ERR_OUT_OF_MEMORY);
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return FFNC_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
    char *data = realloc(b->data, cap);
    if (!data) return FFNC_ERR_OUT_OF_MEMORY;
    b->data = data;
    b->cap = cap;
    return FFNC_OK;
}

static ffnc_status put_bytes(json_buf *b, const char *s, size_t n) {
    FFNC_TRY(reserve(b, n));
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return FFNC_OK;
}

ffnc_status json_put_raw(json_buf *b, const char *s) { return put_bytes(b, s, strlen(s)); }

ffnc_status json_put_string(json_buf *b, const char *s) {
    FFNC_TRY(put_bytes(b, "\"", 1));
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\', esc[1] = (char)*c;
            FFNC_TRY(put_bytes(b, esc, 2));
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            FFNC_TRY(put_bytes(b, esc, 6));
        } else {
            FFNC_TRY(put_bytes(b, (const char *)c, 1));
        }
    }
    return put_bytes(b, "\"", 1);
}

ffnc_status json_put_double(json_buf *b, double x) {
    FFNC_REQUIRE(isfinite(x), FFNC_ERR_INVALID_ARGUMENT);
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (strtod(text, NULL) == x) break;
    }
    /* snprintf writes the decimal point of the program's C locale; JSON wants '.' */
    char point = localeconv()->decimal_point[0];
    if (point != '.' && point != '\0')
        for (char *c = text; *c; c++)
            if (*c == point) *c = '.';
    /* "1e-05" and "3" are valid JSON numbers; a bare integer stays one (Python reads 3 as int,
     * which every consumer of these values accepts as a float) */
    return json_put_raw(b, text);
}

ffnc_status json_put_uint(json_buf *b, uint64_t x) {
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)x);
    return json_put_raw(b, text);
}

void json_buf_free(json_buf *b) {
    free(b->data);
    *b = (json_buf){NULL, 0, 0};
}
