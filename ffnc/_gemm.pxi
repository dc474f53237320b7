# gemm kernels. Included by _core.pyx.
