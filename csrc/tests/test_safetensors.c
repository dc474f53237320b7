/* The safetensors reader and writer: a round trip of every kind of tensor, files written as the
 * Python package writes them, and malformed, truncated and mutated files, which must all be
 * rejected with FFNC_ERR_FORMAT (never a crash, never an over-read: run under ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char path_buf[256];
static const char *temp_path(const char *what) {
    snprintf(path_buf, sizeof path_buf, "test_safetensors_%ld_%s.safetensors", (long)getpid(),
             what);
    return path_buf;
}

/* Builds a file image: the 8-byte length, `header`, then `data_len` bytes of `data`. */
static unsigned char *image(const char *header, const void *data, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_len;
    unsigned char *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    if (data_len) memcpy(b + 8 + n, data, data_len);
    return b;
}

static ffnc_status parse_header(const char *header, size_t data_len) {
    unsigned char data[64] = {0};
    size_t size;
    unsigned char *b = image(header, data, data_len, &size);
    ffnc_safetensors *f = (ffnc_safetensors *)b; /* must be reset to NULL on failure */
    ffnc_status s = ffnc_safetensors_parse(b, size, &f);
    if (s != FFNC_OK && f != NULL) s = FFNC_ERR_INVALID_ARGUMENT; /* flag a dangling handle */
    ffnc_safetensors_free(s == FFNC_OK ? f : NULL);
    free(b);
    return s;
}

static void test_round_trip(void) {
    float w[6] = {1.5f, -2, 3, 4, 5, 6};
    double d[4] = {0.1, -0.2, 1e300, -0.0};
    int64_t labels[3] = {0, -7, INT64_MAX};
    unsigned char flag = 1;
    ffnc_safetensors_writer *wr = NULL;
    CHECK_OK(ffnc_safetensors_writer_create(&wr));
    size_t wshape[2] = {2, 3}, dshape[1] = {4}, lshape[1] = {3}, empty_shape[2] = {0, 5};
    CHECK_OK(ffnc_safetensors_writer_add(wr, "layer.weight", FFNC_TENSOR_F32, 2, wshape, w));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "d", FFNC_TENSOR_F64, 1, dshape, d));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "labels", FFNC_TENSOR_I64, 1, lshape, labels));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "flag", FFNC_TENSOR_BOOL, 0, NULL, &flag));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "empty", FFNC_TENSOR_F32, 2, empty_shape, NULL));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "n\xc3\xa4me \"q\"\\", FFNC_TENSOR_U8, 1, lshape,
                                         "abc"));
    CHECK_OK(ffnc_safetensors_writer_add_metadata(wr, "format", "ffnc"));
    CHECK_OK(ffnc_safetensors_writer_add_metadata(wr, "json", "{\"a\": [1, 2]}\n\ttab"));
    /* writer argument errors */
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "d", FFNC_TENSOR_F64, 1, dshape, d),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "__metadata__", FFNC_TENSOR_F64, 1, dshape, d),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "bad\xff", FFNC_TENSOR_F64, 1, dshape, d),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "nodata", FFNC_TENSOR_F64, 1, dshape, NULL),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "x", (ffnc_tensor_dtype)99, 1, dshape, d),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "x", FFNC_TENSOR_F64, FFNC_TENSOR_MAX_DIMS + 1,
                                             dshape, d),
                 FFNC_ERR_INVALID_ARGUMENT);
    size_t huge[2] = {SIZE_MAX / 2, 3};
    CHECK_STATUS(ffnc_safetensors_writer_add(wr, "huge", FFNC_TENSOR_F64, 2, huge, d),
                 FFNC_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(ffnc_safetensors_writer_add_metadata(wr, "format", "again"),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_writer_add(NULL, "x", FFNC_TENSOR_F64, 1, dshape, d),
                 FFNC_ERR_NULL_POINTER);

    const char *path = temp_path("round_trip");
    CHECK_OK(ffnc_safetensors_writer_save(wr, path));
    /* saving again replaces the file whole */
    CHECK_OK(ffnc_safetensors_writer_save(wr, path));
    CHECK_STATUS(ffnc_safetensors_writer_save(wr, "no/such/directory/file.safetensors"),
                 FFNC_ERR_IO);
    ffnc_safetensors_writer_free(wr);

    ffnc_safetensors *f = NULL;
    CHECK_OK(ffnc_safetensors_load(path, &f));
    if (!f) return;
    CHECK(ffnc_safetensors_count(f) == 6);
    ffnc_tensor_info info;
    CHECK_OK(ffnc_safetensors_find(f, "layer.weight", &info));
    CHECK(info.dtype == FFNC_TENSOR_F32 && info.ndim == 2 && info.shape[0] == 2 &&
          info.shape[1] == 3 && info.count == 6 && info.nbytes == 24);
    float w2[6];
    CHECK_OK(ffnc_safetensors_read(f, "layer.weight", FFNC_TENSOR_F32, 6, w2));
    CHECK(memcmp(w, w2, sizeof w) == 0);
    double d2[4];
    CHECK_OK(ffnc_safetensors_read(f, "d", FFNC_TENSOR_F64, 4, d2));
    CHECK(memcmp(d, d2, sizeof d) == 0);
    int64_t l2[3];
    CHECK_OK(ffnc_safetensors_read(f, "labels", FFNC_TENSOR_I64, 3, l2));
    CHECK(memcmp(labels, l2, sizeof labels) == 0);
    CHECK_OK(ffnc_safetensors_find(f, "flag", &info));
    CHECK(info.ndim == 0 && info.count == 1);
    CHECK_OK(ffnc_safetensors_find(f, "empty", &info));
    CHECK(info.count == 0 && info.nbytes == 0);
    char text[3];
    CHECK_OK(ffnc_safetensors_read(f, "n\xc3\xa4me \"q\"\\", FFNC_TENSOR_U8, 3, text));
    CHECK(memcmp(text, "abc", 3) == 0);
    /* wider elements first, so each tensor is aligned to its width in the data */
    size_t offset = 0, previous_width = 8;
    for (size_t i = 0; i < ffnc_safetensors_count(f); i++) {
        CHECK_OK(ffnc_safetensors_info(f, i, &info));
        size_t width = ffnc_tensor_dtype_size(info.dtype);
        CHECK(width <= previous_width && offset % width == 0);
        previous_width = width;
        offset += info.nbytes;
    }
    CHECK_STATUS(ffnc_safetensors_info(f, 6, &info), FFNC_ERR_INVALID_ARGUMENT);
    const char *value;
    CHECK_OK(ffnc_safetensors_metadata(f, "json", &value));
    CHECK(strcmp(value, "{\"a\": [1, 2]}\n\ttab") == 0);
    CHECK_STATUS(ffnc_safetensors_metadata(f, "nope", &value), FFNC_ERR_NOT_FOUND);
    CHECK_STATUS(ffnc_safetensors_find(f, "nope", &info), FFNC_ERR_NOT_FOUND);
    CHECK_STATUS(ffnc_safetensors_read(f, "d", FFNC_TENSOR_F32, 4, w2), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_read(f, "d", FFNC_TENSOR_F64, 3, d2), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_safetensors_read(f, "d", FFNC_TENSOR_F64, 4, NULL), FFNC_ERR_NULL_POINTER);
    ffnc_safetensors_free(f);
    remove(path);

    f = (ffnc_safetensors *)&info;
    CHECK_STATUS(ffnc_safetensors_load("no/such/file.safetensors", &f), FFNC_ERR_IO);
    CHECK(f == NULL);
    CHECK_STATUS(ffnc_safetensors_load(".", &f), FFNC_ERR_IO);
    CHECK_STATUS(ffnc_safetensors_load(NULL, &f), FFNC_ERR_NULL_POINTER);
    CHECK(strcmp(ffnc_tensor_dtype_name(FFNC_TENSOR_BF16), "BF16") == 0);
    CHECK(strcmp(ffnc_tensor_dtype_name((ffnc_tensor_dtype)-1), "unknown") == 0);
    CHECK(ffnc_tensor_dtype_size((ffnc_tensor_dtype)99) == 0);
}

/* Headers as the safetensors Python package writes them (spaces, padding, metadata first or
 * not), and every reason a header must be refused. */
static void test_headers(void) {
    CHECK_OK(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8));
    CHECK_OK(parse_header("{\"__metadata__\": {\"k\": \"v\"}, \"a\": {\"dtype\": \"F32\", "
                          "\"shape\": [2], \"data_offsets\": [0, 8]}}       ",
                          8));
    CHECK_OK(parse_header("{}", 0));
    CHECK_OK(parse_header("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8));
    CHECK_OK(parse_header("{\"\\u00e4\\ud83d\\ude00\":{\"dtype\":\"I8\",\"shape\":[1],"
                          "\"data_offsets\":[0,1]}}",
                          1));
    const char *bad[] = {
        "",
        "[]",
        " {}",
        "{",
        "{}x",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{'a':1}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", /* duplicate */
        "{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}",  /* dtype */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}",                         /* missing */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",  /* lying length */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}",   /* past data */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",    /* hole */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",    /* hole */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",      /* overlap */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
        "\"data_offsets\":[0,8]}}", /* element count overflows */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551624]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,08]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
        "{\"__metadata__\":{\"k\":1}}",
        "{\"__metadata__\":[]}",
        "{\"\\ud800\":1}",    /* lone surrogate */
        "{\"\\u0000\":1}",    /* NUL in a key */
        "{\"a\\x\":1}",       /* bad escape */
        "{\"a\tb\":1}",       /* raw control character */
        "{\"\xc0\xaf\":1}",   /* overlong UTF-8 */
        "{\"\xed\xa0\x80\":1}", /* UTF-8 surrogate */
        "{\"a\":tru}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":01}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ffnc_status s = parse_header(bad[i], 8);
        check_total++;
        if (s != FFNC_ERR_FORMAT) {
            check_failed++;
            fprintf(stderr, "header %zu accepted or misreported (%d): %s\n", i, (int)s, bad[i]);
        }
    }
    /* nesting deeper than the parser allows */
    char deep[300] = "{\"a\":";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    for (int i = 0; i < 100; i++) strcat(deep, "]");
    strcat(deep, "}");
    CHECK_STATUS(parse_header(deep, 0), FFNC_ERR_FORMAT);
}

/* The length prefix itself lying: longer than the file, absurdly large, too short. */
static void test_lengths(void) {
    unsigned char b[16] = {0};
    ffnc_safetensors *f = NULL;
    for (size_t n = 0; n < 8; n++) CHECK_STATUS(ffnc_safetensors_parse(b, n, &f), FFNC_ERR_FORMAT);
    b[0] = 9; /* header of 9 bytes in a 16-byte file */
    CHECK_STATUS(ffnc_safetensors_parse(b, 16, &f), FFNC_ERR_FORMAT);
    memset(b, 0xFF, 8);
    CHECK_STATUS(ffnc_safetensors_parse(b, 16, &f), FFNC_ERR_FORMAT);
    CHECK_STATUS(ffnc_safetensors_parse(NULL, 16, &f), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_safetensors_parse(b, 16, NULL), FFNC_ERR_NULL_POINTER);
}

/* Every truncation of a valid file fails; every single-byte mutation either fails cleanly or
 * yields a self-consistent file (tensor bytes may change freely). */
static void test_truncated_and_mutated(void) {
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t l[2] = {1, 2};
    size_t ws[2] = {2, 3}, ls[1] = {2};
    ffnc_safetensors_writer *wr = NULL;
    CHECK_OK(ffnc_safetensors_writer_create(&wr));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "w", FFNC_TENSOR_F32, 2, ws, w));
    CHECK_OK(ffnc_safetensors_writer_add(wr, "l", FFNC_TENSOR_I64, 1, ls, l));
    CHECK_OK(ffnc_safetensors_writer_add_metadata(wr, "format", "ffnc"));
    const char *path = temp_path("mutate");
    CHECK_OK(ffnc_safetensors_writer_save(wr, path));
    ffnc_safetensors_writer_free(wr);
    FILE *fp = fopen(path, "rb");
    unsigned char bytes[512];
    size_t size = fp ? fread(bytes, 1, sizeof bytes, fp) : 0;
    if (fp) fclose(fp);
    remove(path);
    CHECK(size > 100 && size < sizeof bytes);
    ffnc_safetensors *f = NULL;
    for (size_t n = 0; n < size; n++) {
        ffnc_status s = ffnc_safetensors_parse(bytes, n, &f);
        check_total++;
        if (s != FFNC_ERR_FORMAT || f) {
            check_failed++;
            fprintf(stderr, "truncation to %zu bytes not rejected (%d)\n", n, (int)s);
        }
    }
    const unsigned char replacements[] = {0x00, 0xFF, '"', '{', '}', '[', ']', ',', ':', '0',
                                          '9', ' ', '\\', 'A', 0x80};
    size_t accepted = 0, rejected = 0;
    for (size_t i = 0; i < size; i++)
        for (size_t r = 0; r < sizeof replacements; r++) {
            unsigned char copy[512];
            memcpy(copy, bytes, size);
            if (copy[i] == replacements[r]) continue;
            copy[i] = replacements[r];
            ffnc_status s = ffnc_safetensors_parse(copy, size, &f);
            if (s == FFNC_OK) {
                accepted++;
                /* whatever was accepted must be readable in full */
                int consistent = 1;
                for (size_t t = 0; t < ffnc_safetensors_count(f); t++) {
                    ffnc_tensor_info info;
                    unsigned char out[64];
                    consistent &= ffnc_safetensors_info(f, t, &info) == FFNC_OK &&
                                  info.nbytes <= sizeof out &&
                                  ffnc_safetensors_read(f, info.name, info.dtype, info.count,
                                                        out) == FFNC_OK;
                }
                CHECK(consistent);
                ffnc_safetensors_free(f);
            } else {
                rejected++;
                check_total++;
                if (s != FFNC_ERR_FORMAT) {
                    check_failed++;
                    fprintf(stderr, "mutation at %zu: status %d\n", i, (int)s);
                }
            }
        }
    CHECK(accepted > 0 && rejected > 0);
}

int main(void) {
    test_round_trip();
    test_headers();
    test_lengths();
    test_truncated_and_mutated();
    return check_report("safetensors");
}
