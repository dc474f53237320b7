# optim kernels. Included by _core.pyx.
