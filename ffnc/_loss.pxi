# loss kernels. Included by _core.pyx.
