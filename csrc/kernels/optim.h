/* optim kernels (optim.c), for the kernel table. REAL is bound where the list is expanded. */
#ifndef FFNC_KERNELS_OPTIM_H
#define FFNC_KERNELS_OPTIM_H

#define FFNC_OPTIM_KERNELS(X)

#endif
