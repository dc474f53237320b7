# plan kernels. Included by _core.pyx.
