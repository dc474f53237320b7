/* Instantiates the template FFNC_TEMPLATE (a header written in terms of REAL and SFX) once for
 * float (SFX f32) and once for double (SFX f64). Usage, in a .c file:
 *     #define FFNC_TEMPLATE "loss.tmpl.h"
 *     #include "instantiate.h"
 * Deliberately without an include guard: each family includes it once with its template. */
#ifndef FFNC_TEMPLATE
#error "define FFNC_TEMPLATE as the template header to instantiate"
#endif

#define REAL float
#define SFX f32
#include FFNC_TEMPLATE
#undef REAL
#undef SFX

#define REAL double
#define SFX f64
#include FFNC_TEMPLATE
#undef REAL
#undef SFX

#undef FFNC_TEMPLATE
