/* Safetensors reading (strict, see ffnc.h) and atomic writing. POSIX file calls (open, fsync,
 * rename, a directory scan) and flock give the atomic replacement and the clean-up of a killed
 * writer's temporary file; everything else is C11. */
#define _POSIX_C_SOURCE 200809L
/* flock is BSD, not POSIX: these expose it beside the POSIX names (glibc, macOS). */
#define _DEFAULT_SOURCE
#define _DARWIN_C_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "json.h"

/* The safetensors reference implementation refuses larger headers too. */
#define ST_MAX_HEADER ((uint64_t)100000000)

static const struct {
    const char *name;
    size_t size;
} dtype_table[FFNC_TENSOR_DTYPE_COUNT] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2}, {"U16", 2},      {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8},      {"I64", 8},
    {"U64", 8},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
};

const char *ffnc_tensor_dtype_name(ffnc_tensor_dtype dtype) {
    if ((int)dtype < 0 || dtype >= FFNC_TENSOR_DTYPE_COUNT) return "unknown";
    return dtype_table[dtype].name;
}

size_t ffnc_tensor_dtype_size(ffnc_tensor_dtype dtype) {
    if ((int)dtype < 0 || dtype >= FFNC_TENSOR_DTYPE_COUNT) return 0;
    return dtype_table[dtype].size;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Copies n bytes of elements `width` bytes wide, reversing each element's bytes on a
 * big-endian host (the file is little-endian). */
static void copy_le(void *dst, const void *src, size_t nbytes, size_t width) {
    if (host_is_little_endian() || width == 1) {
        if (nbytes) memcpy(dst, src, nbytes);
        return;
    }
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (size_t i = 0; i < nbytes; i += width)
        for (size_t b = 0; b < width; b++) d[i + b] = s[i + width - 1 - b];
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct st_tensor {
    const char *name; /* in the JSON pool */
    ffnc_tensor_dtype dtype;
    size_t ndim;
    size_t shape[FFNC_TENSOR_MAX_DIMS];
    size_t count, nbytes, begin, end;
} st_tensor;

struct ffnc_safetensors {
    unsigned char *bytes;
    size_t size;
    size_t data_start;
    json_doc doc;
    st_tensor *tensors;
    size_t n_tensors;
    const json_node *metadata; /* NULL when the file has none */
};

void ffnc_safetensors_free(ffnc_safetensors *file) {
    if (!file) return;
    json_free(&file->doc);
    free(file->tensors);
    free(file->bytes);
    free(file);
}

static ffnc_status parse_dtype(const json_doc *doc, const json_node *n, ffnc_tensor_dtype *out) {
    FFNC_REQUIRE(n && n->type == JSON_STRING, FFNC_ERR_FORMAT);
    for (int d = 0; d < FFNC_TENSOR_DTYPE_COUNT; d++)
        if (strcmp(json_str(doc, n), dtype_table[d].name) == 0) {
            *out = (ffnc_tensor_dtype)d;
            return FFNC_OK;
        }
    return FFNC_ERR_FORMAT;
}

static ffnc_status parse_size(const json_doc *doc, const json_node *n, size_t *out) {
    uint64_t v;
    FFNC_REQUIRE(json_uint(doc, n, &v) && v <= SIZE_MAX, FFNC_ERR_FORMAT);
    *out = (size_t)v;
    return FFNC_OK;
}

static ffnc_status parse_tensor(const json_doc *doc, const json_node *entry, size_t data_size,
                                st_tensor *t) {
    FFNC_REQUIRE(entry->type == JSON_OBJECT && entry->count == 3, FFNC_ERR_FORMAT);
    const json_node *dtype = json_get(doc, entry, "dtype");
    const json_node *shape = json_get(doc, entry, "shape");
    const json_node *offsets = json_get(doc, entry, "data_offsets");
    FFNC_REQUIRE(dtype && shape && offsets, FFNC_ERR_FORMAT);
    t->name = json_key(doc, entry);
    FFNC_TRY(parse_dtype(doc, dtype, &t->dtype));
    FFNC_REQUIRE(shape->type == JSON_ARRAY && shape->count <= FFNC_TENSOR_MAX_DIMS,
                 FFNC_ERR_FORMAT);
    t->ndim = shape->count;
    size_t count = 1, i = 0;
    for (const json_node *d = json_first(doc, shape); d; d = json_next(doc, d), i++) {
        FFNC_TRY(parse_size(doc, d, &t->shape[i]));
        /* an overflowing element count cannot describe bytes in this file */
        FFNC_REQUIRE(ffnc_mul_size(count, t->shape[i], &count) == FFNC_OK, FFNC_ERR_FORMAT);
    }
    t->count = count;
    FFNC_REQUIRE(ffnc_mul_size(count, dtype_table[t->dtype].size, &t->nbytes) == FFNC_OK,
                 FFNC_ERR_FORMAT);
    FFNC_REQUIRE(offsets->type == JSON_ARRAY && offsets->count == 2, FFNC_ERR_FORMAT);
    const json_node *b = json_first(doc, offsets);
    FFNC_TRY(parse_size(doc, b, &t->begin));
    FFNC_TRY(parse_size(doc, json_next(doc, b), &t->end));
    FFNC_REQUIRE(t->begin <= t->end && t->end <= data_size, FFNC_ERR_FORMAT);
    FFNC_REQUIRE(t->end - t->begin == t->nbytes, FFNC_ERR_FORMAT);
    return FFNC_OK;
}

static int by_offset(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Checks the header of file->bytes and builds the tensor table. */
static ffnc_status parse_file(ffnc_safetensors *file) {
    FFNC_REQUIRE(file->size >= 8, FFNC_ERR_FORMAT);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | file->bytes[i];
    FFNC_REQUIRE(header_len <= ST_MAX_HEADER && header_len <= file->size - 8, FFNC_ERR_FORMAT);
    const char *header = (const char *)file->bytes + 8;
    FFNC_REQUIRE(header_len >= 2 && header[0] == '{', FFNC_ERR_FORMAT);
    file->data_start = 8 + (size_t)header_len;
    size_t data_size = file->size - file->data_start;
    json_doc *doc = &file->doc;
    FFNC_TRY(json_parse(header, (size_t)header_len, doc));
    const json_node *root = json_root(doc);
    FFNC_REQUIRE(root->type == JSON_OBJECT, FFNC_ERR_FORMAT);
    size_t n = root->count;
    if (n) {
        file->tensors = calloc(n, sizeof(st_tensor)); /* n <= header bytes */
        if (!file->tensors) return FFNC_ERR_OUT_OF_MEMORY;
    }
    for (const json_node *m = json_first(doc, root); m; m = json_next(doc, m)) {
        if (strcmp(json_key(doc, m), "__metadata__") == 0) {
            FFNC_REQUIRE(m->type == JSON_OBJECT, FFNC_ERR_FORMAT);
            for (const json_node *v = json_first(doc, m); v; v = json_next(doc, v))
                FFNC_REQUIRE(v->type == JSON_STRING, FFNC_ERR_FORMAT);
            file->metadata = m;
            continue;
        }
        FFNC_TRY(parse_tensor(doc, m, data_size, &file->tensors[file->n_tensors]));
        file->n_tensors++;
    }
    if (file->n_tensors > 1)
        qsort(file->tensors, file->n_tensors, sizeof(st_tensor), by_offset);
    /* The tensors must tile the data exactly: no overlap, no hole, nothing after them. */
    size_t covered = 0;
    for (size_t i = 0; i < file->n_tensors; i++) {
        FFNC_REQUIRE(file->tensors[i].begin == covered, FFNC_ERR_FORMAT);
        covered = file->tensors[i].end;
    }
    FFNC_REQUIRE(covered == data_size, FFNC_ERR_FORMAT);
    return FFNC_OK;
}

/* Takes ownership of bytes (allocated with malloc). */
static ffnc_status open_bytes(unsigned char *bytes, size_t size, ffnc_safetensors **out) {
    ffnc_safetensors *file = calloc(1, sizeof *file);
    if (!file) {
        free(bytes);
        return FFNC_ERR_OUT_OF_MEMORY;
    }
    file->bytes = bytes;
    file->size = size;
    ffnc_status s = parse_file(file);
    if (s != FFNC_OK) {
        ffnc_safetensors_free(file);
        return s;
    }
    *out = file;
    return FFNC_OK;
}

ffnc_status ffnc_safetensors_parse(const void *bytes, size_t size, ffnc_safetensors **file) {
    FFNC_REQUIRE(file, FFNC_ERR_NULL_POINTER);
    *file = NULL;
    FFNC_REQUIRE(bytes || size == 0, FFNC_ERR_NULL_POINTER);
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) return FFNC_ERR_OUT_OF_MEMORY;
    if (size) memcpy(copy, bytes, size);
    return open_bytes(copy, size, file);
}

ffnc_status ffnc_safetensors_load(const char *path, ffnc_safetensors **file) {
    FFNC_REQUIRE(path && file, FFNC_ERR_NULL_POINTER);
    *file = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return FFNC_ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > SIZE_MAX - 1) {
        close(fd);
        return FFNC_ERR_IO;
    }
    size_t size = (size_t)st.st_size;
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes) {
        close(fd);
        return FFNC_ERR_OUT_OF_MEMORY;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, bytes + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) { /* the file shrank while being read */
        free(bytes);
        return FFNC_ERR_IO;
    }
    return open_bytes(bytes, size, file);
}

size_t ffnc_safetensors_count(const ffnc_safetensors *file) { return file ? file->n_tensors : 0; }

static void fill_info(const st_tensor *t, ffnc_tensor_info *info) {
    info->name = t->name;
    info->dtype = t->dtype;
    info->ndim = t->ndim;
    for (size_t d = 0; d < FFNC_TENSOR_MAX_DIMS; d++) info->shape[d] = d < t->ndim ? t->shape[d] : 0;
    info->count = t->count;
    info->nbytes = t->nbytes;
}

ffnc_status ffnc_safetensors_info(const ffnc_safetensors *file, size_t index,
                                  ffnc_tensor_info *info) {
    FFNC_REQUIRE(file && info, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(index < file->n_tensors, FFNC_ERR_INVALID_ARGUMENT);
    fill_info(&file->tensors[index], info);
    return FFNC_OK;
}

static const st_tensor *find(const ffnc_safetensors *file, const char *name) {
    for (size_t i = 0; i < file->n_tensors; i++)
        if (strcmp(file->tensors[i].name, name) == 0) return &file->tensors[i];
    return NULL;
}

ffnc_status ffnc_safetensors_find(const ffnc_safetensors *file, const char *name,
                                  ffnc_tensor_info *info) {
    FFNC_REQUIRE(file && name && info, FFNC_ERR_NULL_POINTER);
    const st_tensor *t = find(file, name);
    FFNC_REQUIRE(t, FFNC_ERR_NOT_FOUND);
    fill_info(t, info);
    return FFNC_OK;
}

ffnc_status ffnc_safetensors_read(const ffnc_safetensors *file, const char *name,
                                  ffnc_tensor_dtype dtype, size_t count, void *dst) {
    FFNC_REQUIRE(file && name, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(dst || count == 0, FFNC_ERR_NULL_POINTER);
    const st_tensor *t = find(file, name);
    FFNC_REQUIRE(t, FFNC_ERR_NOT_FOUND);
    FFNC_REQUIRE(t->dtype == dtype && t->count == count, FFNC_ERR_INVALID_ARGUMENT);
    copy_le(dst, file->bytes + file->data_start + t->begin, t->nbytes, dtype_table[dtype].size);
    return FFNC_OK;
}

ffnc_status ffnc_safetensors_metadata(const ffnc_safetensors *file, const char *key,
                                      const char **value) {
    FFNC_REQUIRE(file && key && value, FFNC_ERR_NULL_POINTER);
    const json_node *v = json_get(&file->doc, file->metadata, key);
    FFNC_REQUIRE(v, FFNC_ERR_NOT_FOUND);
    *value = json_str(&file->doc, v);
    return FFNC_OK;
}

/* ---- writing ------------------------------------------------------------------------------- */

typedef struct st_entry {
    char *name;
    ffnc_tensor_dtype dtype;
    size_t ndim;
    size_t shape[FFNC_TENSOR_MAX_DIMS];
    size_t nbytes;
    const void *data;
} st_entry;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct ffnc_safetensors_writer {
    st_entry *entries;
    size_t n_entries, cap_entries;
    st_meta *meta;
    size_t n_meta, cap_meta;
};

ffnc_status ffnc_safetensors_writer_create(ffnc_safetensors_writer **writer) {
    FFNC_REQUIRE(writer, FFNC_ERR_NULL_POINTER);
    *writer = calloc(1, sizeof **writer);
    return *writer ? FFNC_OK : FFNC_ERR_OUT_OF_MEMORY;
}

void ffnc_safetensors_writer_free(ffnc_safetensors_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_entries; i++) free(w->entries[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->entries);
    free(w->meta);
    free(w);
}

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

/* Makes room for one more element of `size` bytes in *array. */
static ffnc_status grow(void **array, size_t *cap, size_t used, size_t size) {
    if (used < *cap) return FFNC_OK;
    size_t n = *cap ? 2 * *cap : 8;
    FFNC_REQUIRE(n <= SIZE_MAX / size, FFNC_ERR_OUT_OF_MEMORY);
    void *p = realloc(*array, n * size);
    if (!p) return FFNC_ERR_OUT_OF_MEMORY;
    *array = p;
    *cap = n;
    return FFNC_OK;
}

ffnc_status ffnc_safetensors_writer_add(ffnc_safetensors_writer *w, const char *name,
                                        ffnc_tensor_dtype dtype, size_t ndim,
                                        const size_t *shape, const void *data) {
    FFNC_REQUIRE(w && name, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(ndim == 0 || shape, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE((int)dtype >= 0 && dtype < FFNC_TENSOR_DTYPE_COUNT, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(ndim <= FFNC_TENSOR_MAX_DIMS, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(json_utf8_valid(name, strlen(name)) && strcmp(name, "__metadata__") != 0,
                 FFNC_ERR_INVALID_ARGUMENT);
    for (size_t i = 0; i < w->n_entries; i++)
        FFNC_REQUIRE(strcmp(w->entries[i].name, name) != 0, FFNC_ERR_INVALID_ARGUMENT);
    size_t count = 1, nbytes;
    for (size_t d = 0; d < ndim; d++) FFNC_TRY(ffnc_mul_size(count, shape[d], &count));
    FFNC_TRY(ffnc_mul_size(count, dtype_table[dtype].size, &nbytes));
    FFNC_REQUIRE(data || nbytes == 0, FFNC_ERR_NULL_POINTER);
    FFNC_TRY(grow((void **)&w->entries, &w->cap_entries, w->n_entries, sizeof(st_entry)));
    st_entry *e = &w->entries[w->n_entries];
    memset(e, 0, sizeof *e);
    e->name = copy_string(name);
    if (!e->name) return FFNC_ERR_OUT_OF_MEMORY;
    e->dtype = dtype;
    e->ndim = ndim;
    for (size_t d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->nbytes = nbytes;
    e->data = data;
    w->n_entries++;
    return FFNC_OK;
}

ffnc_status ffnc_safetensors_writer_add_metadata(ffnc_safetensors_writer *w, const char *key,
                                                 const char *value) {
    FFNC_REQUIRE(w && key && value, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(json_utf8_valid(key, strlen(key)) && json_utf8_valid(value, strlen(value)),
                 FFNC_ERR_INVALID_ARGUMENT);
    for (size_t i = 0; i < w->n_meta; i++)
        FFNC_REQUIRE(strcmp(w->meta[i].key, key) != 0, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_TRY(grow((void **)&w->meta, &w->cap_meta, w->n_meta, sizeof(st_meta)));
    st_meta *m = &w->meta[w->n_meta];
    m->key = copy_string(key);
    m->value = copy_string(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return FFNC_ERR_OUT_OF_MEMORY;
    }
    w->n_meta++;
    return FFNC_OK;
}

/* The header JSON for the entries in `order`, padded with spaces to a multiple of 8. */
static ffnc_status build_header(const ffnc_safetensors_writer *w, const size_t *order,
                                json_buf *b) {
    FFNC_TRY(json_put_raw(b, "{"));
    int first = 1;
    if (w->n_meta) {
        FFNC_TRY(json_put_raw(b, "\"__metadata__\":{"));
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) FFNC_TRY(json_put_raw(b, ","));
            FFNC_TRY(json_put_string(b, w->meta[i].key));
            FFNC_TRY(json_put_raw(b, ":"));
            FFNC_TRY(json_put_string(b, w->meta[i].value));
        }
        FFNC_TRY(json_put_raw(b, "}"));
        first = 0;
    }
    size_t offset = 0;
    for (size_t i = 0; i < w->n_entries; i++) {
        const st_entry *e = &w->entries[order[i]];
        if (!first) FFNC_TRY(json_put_raw(b, ","));
        first = 0;
        FFNC_TRY(json_put_string(b, e->name));
        FFNC_TRY(json_put_raw(b, ":{\"dtype\":\""));
        FFNC_TRY(json_put_raw(b, dtype_table[e->dtype].name));
        FFNC_TRY(json_put_raw(b, "\",\"shape\":["));
        for (size_t d = 0; d < e->ndim; d++) {
            if (d) FFNC_TRY(json_put_raw(b, ","));
            FFNC_TRY(json_put_uint(b, e->shape[d]));
        }
        FFNC_TRY(json_put_raw(b, "],\"data_offsets\":["));
        FFNC_TRY(json_put_uint(b, offset));
        FFNC_TRY(json_put_raw(b, ","));
        FFNC_REQUIRE(offset <= SIZE_MAX - e->nbytes, FFNC_ERR_SIZE_OVERFLOW);
        offset += e->nbytes;
        FFNC_TRY(json_put_uint(b, offset));
        FFNC_TRY(json_put_raw(b, "]}"));
    }
    FFNC_TRY(json_put_raw(b, "}"));
    while (b->len % 8) FFNC_TRY(json_put_raw(b, " "));
    FFNC_REQUIRE(b->len <= ST_MAX_HEADER, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

static int write_all(int fd, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Tensor data in little-endian order, through a bounce buffer on big-endian hosts. */
static int write_tensor(int fd, const st_entry *e) {
    size_t width = dtype_table[e->dtype].size;
    if (host_is_little_endian() || width == 1) return write_all(fd, e->data, e->nbytes);
    unsigned char buf[4096];
    const unsigned char *src = e->data;
    for (size_t done = 0; done < e->nbytes;) {
        size_t n = e->nbytes - done < sizeof buf ? e->nbytes - done : sizeof buf;
        copy_le(buf, src + done, n, width);
        if (write_all(fd, buf, n)) return -1;
        done += n;
    }
    return 0;
}

/* The directory holding `path`, so the rename itself can be made durable. */
static void sync_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        dir[0] = '.', dir[1] = '\0';
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1; /* "/file" */
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    fsync(fd); /* best effort: some file systems refuse fsync on directories */
    close(fd);
}

/* ---- the temporary file: the scheme of ffnc/io.py's write_atomic --------------------------- */

/* A save writes "<dir>/.<name>.ffnc-<random>.tmp" (<name> the last component of the target),
 * flock-ed by its writer until it is renamed over the target. A writer killed before the rename
 * leaves its file unlocked, and the next save to the same target removes it. Python's writer
 * uses the same names and the same (flock) locks, so each removes the other's leftovers and
 * leaves the other's live files alone. */
#define TEMP_TAG ".ffnc-"
#define TEMP_SUFFIX ".tmp"
#define TEMP_RANDOM 12 /* characters of [a-z0-9]; O_EXCL settles any collision */

/* `file` is a temporary file of a save to target `name`. */
static int is_temp_of(const char *file, const char *name, size_t name_len) {
    size_t n = strlen(file), tag = strlen(TEMP_TAG), suffix = strlen(TEMP_SUFFIX);
    return n >= 1 + name_len + tag + suffix && file[0] == '.' &&
           memcmp(file + 1, name, name_len) == 0 &&
           memcmp(file + 1 + name_len, TEMP_TAG, tag) == 0 &&
           memcmp(file + n - suffix, TEMP_SUFFIX, suffix) == 0;
}

/* Removes the temporary files of earlier saves to `name` in `dir` whose writer died: their lock
 * is free. A live writer holds its lock until its rename, and the file found must still be the
 * one locked (its writer may have renamed it meanwhile). `path_room` holds dir "/" a file name. */
static void remove_stale_temps(const char *dir, const char *name, char *path_room,
                               size_t room) {
    DIR *d = opendir(dir);
    if (!d) return;
    size_t name_len = strlen(name);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!is_temp_of(e->d_name, name, name_len)) continue;
        if ((size_t)snprintf(path_room, room, "%s/%s", dir, e->d_name) >= room) continue;
        /* O_NONBLOCK: a FIFO of that name must not block the save; O_NOFOLLOW: nor lead it
         * elsewhere */
        int fd = open(path_room, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue; /* gone meanwhile (renamed by its writer), or not ours to open */
        struct stat by_name, held;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 &&
            lstat(path_room, &by_name) == 0 && S_ISREG(held.st_mode) &&
            by_name.st_ino == held.st_ino && by_name.st_dev == held.st_dev)
            unlink(path_room);
        close(fd); /* and the lock with it */
    }
    closedir(d);
}

static void random_chars(char *out, size_t n) {
    static atomic_ulong counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t z = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)now.tv_nsec ^
                 (uint64_t)now.tv_sec << 30 ^ (uint64_t)atomic_fetch_add(&counter, 1) << 48;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < n; i++) {
        z += 0x9E3779B97F4A7C15ULL; /* SplitMix64 */
        uint64_t r = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        r = (r ^ (r >> 27)) * 0x94D049BB133111EBULL;
        r ^= r >> 31;
        out[i] = alphabet[r % (sizeof alphabet - 1)];
    }
    out[n] = '\0';
}

/* Creates and locks a new temporary file for a save to `name` (its path written with
 * `prefix`, "" or the directory and a '/', before the file name) into `tmp`; -1 when it
 * cannot. */
static int create_temp(const char *prefix, const char *name, char *tmp, size_t room) {
    for (int attempt = 0; attempt < 100; attempt++) {
        char random[TEMP_RANDOM + 1];
        random_chars(random, TEMP_RANDOM);
        if ((size_t)snprintf(tmp, room, "%s.%s" TEMP_TAG "%s" TEMP_SUFFIX, prefix, name,
                             random) >= room)
            return -1;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            return -1;
        }
        /* Without locks (a file system refusing them) the save goes on unlocked, as Python's
         * does. */
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR) continue;
        /* Another save's clean-up may have removed the file between its creation and the
         * lock; once locked it stays. */
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_nlink > 0) return fd;
        close(fd);
    }
    return -1;
}

ffnc_status ffnc_safetensors_writer_save(const ffnc_safetensors_writer *w, const char *path) {
    FFNC_REQUIRE(w && path, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(*path, FFNC_ERR_INVALID_ARGUMENT);
    /* Wider elements first (stable), so each tensor starts at a multiple of its width. */
    size_t *order = malloc((w->n_entries ? w->n_entries : 1) * sizeof(size_t));
    if (!order) return FFNC_ERR_OUT_OF_MEMORY;
    size_t k = 0;
    for (size_t width = 8; width >= 1; width /= 2)
        for (size_t i = 0; i < w->n_entries; i++)
            if (dtype_table[w->entries[i].dtype].size == width) order[k++] = i;
    json_buf header = {NULL, 0, 0};
    ffnc_status s = build_header(w, order, &header);
    if (s != FFNC_OK) {
        free(order);
        json_buf_free(&header);
        return s;
    }
    /* path = prefix name, the prefix "" or ending in '/'; the directory to scan is "." for a
     * bare name and "/" for "/name" */
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t prefix_len = (size_t)(name - path);
    /* room for the temporary file's path, and for the directory, a '/' and any file name */
    size_t room = strlen(path) + strlen(TEMP_TAG) + TEMP_RANDOM + strlen(TEMP_SUFFIX) + 300;
    char *prefix = malloc(prefix_len + 1), *dir = malloc(prefix_len + 2), *tmp = malloc(room);
    int fd = -1;
    if (!prefix || !dir || !tmp) s = FFNC_ERR_OUT_OF_MEMORY;
    if (s == FFNC_OK) {
        memcpy(prefix, path, prefix_len);
        prefix[prefix_len] = '\0';
        if (prefix_len <= 1) {
            strcpy(dir, prefix_len ? "/" : ".");
        } else {
            memcpy(dir, path, prefix_len - 1);
            dir[prefix_len - 1] = '\0';
        }
        remove_stale_temps(dir, name, tmp, room);
        fd = create_temp(prefix, name, tmp, room);
        if (fd < 0) s = FFNC_ERR_IO;
    }
    if (s == FFNC_OK) {
        unsigned char len8[8];
        uint64_t n = header.len;
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));
        int failed = write_all(fd, len8, 8) || write_all(fd, header.data, header.len);
        for (size_t i = 0; i < w->n_entries && !failed; i++)
            failed = write_tensor(fd, &w->entries[order[i]]);
        if (!failed) failed = fsync(fd) != 0;
        /* renamed while still locked, so no clean-up can take it first; fsync has reported
         * any write error, so closing after the rename can lose nothing */
        if (!failed) failed = rename(tmp, path) != 0;
        if (failed) unlink(tmp);
        close(fd);
        if (failed) {
            s = FFNC_ERR_IO;
        } else {
            sync_directory(path);
        }
    }
    free(prefix);
    free(dir);
    free(tmp);
    free(order);
    json_buf_free(&header);
    return s;
}
