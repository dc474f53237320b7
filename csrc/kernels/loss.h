/* loss kernels (loss.c), for the kernel table. REAL is bound where the list is expanded. */
#ifndef FFNC_KERNELS_LOSS_H
#define FFNC_KERNELS_LOSS_H

#define FFNC_LOSS_KERNELS(X)

#endif
