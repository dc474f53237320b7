/* Status strings and the library version. */
#include "ffnc.h"

#define FFNC_STR_(x) #x
#define FFNC_STR(x) FFNC_STR_(x)

const char *ffnc_version(void) {
    return FFNC_STR(FFNC_VERSION_MAJOR) "." FFNC_STR(FFNC_VERSION_MINOR) "." FFNC_STR(
        FFNC_VERSION_PATCH);
}

const char *ffnc_status_string(ffnc_status status) {
    switch (status) {
    case FFNC_OK: return "success";
    case FFNC_ERR_NULL_POINTER: return "a required pointer argument is NULL";
    case FFNC_ERR_INVALID_ARGUMENT: return "an argument is outside its valid range";
    case FFNC_ERR_SIZE_OVERFLOW: return "a product of sizes overflows size_t";
    case FFNC_ERR_LABEL_OUT_OF_RANGE: return "a class label is negative or >= the number of classes";
    case FFNC_ERR_OUT_OF_MEMORY: return "out of memory";
    case FFNC_ERR_UNSUPPORTED_ISA: return "the instruction-set path is not supported by this CPU or build";
    case FFNC_ERR_INVALID_DTYPE: return "the dtype is not FFNC_F32 or FFNC_F64";
    case FFNC_ERR_EMPTY: return "the operation needs at least one element";
    case FFNC_ERR_IO: return "a file could not be opened, read, written or renamed";
    case FFNC_ERR_FORMAT: return "the file is malformed, truncated or inconsistent";
    case FFNC_ERR_UNSUPPORTED: return "the file describes a model or tensor this build does not support";
    case FFNC_ERR_NOT_FOUND: return "no entry of that name";
    case FFNC_ERR_INTERRUPTED: return "interrupted between two steps";
    case FFNC_ERR_STEP_LIMIT:
        return "the step counter would pass its limit, 2**63 - 1 (INT64_MAX) steps: set a "
               "smaller step";
    }
    return "unknown ffnc status code";
}
