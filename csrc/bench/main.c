/* ffnc-bench: the C benchmark harness. `ffnc-bench <subcommand> [options]`; --help lists them. */
#include <stdio.h>
#include <string.h>

#include "bench.h"


typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} subcommand;

static const subcommand subcommands[] = {
    {"info", ffnc_bench_info, "info [--dtype f32|f64] [--json]: version, ISA path, threads, peak GFLOP/s"},
    {"activation", ffnc_bench_activation,
     "activation --act NAME [--n N] [--backward] [--dtype f32|f64] [--threads T] [--reps R] [--json]"},
    {"gemm", ffnc_bench_gemm,
     "gemm --m M --n N --k K [--trans-a] [--trans-b] [--check] [--repeat-bitwise] [--dtype f32|f64] [--threads T] [--reps R] [--json]"},
    {"dense", ffnc_bench_dense,
     "dense --m M --n N --k K [--activation NAME] [--trans-weights] [--check] [--repeat-bitwise] [--dtype f32|f64] [--threads T] "
     "[--reps R] [--json]"},
    {"mlp", ffnc_bench_mlp,
     "mlp [--layers 784,512,512,10] [--batch B] [--steps N] [--profile] [--check] [--repeat-bitwise] [--dtype f32|f64] [--threads T] [--json]: one training step (plan); --profile adds the time and the GFLOP/s of each instruction"},
    {"softmax-xent", ffnc_bench_softmax_xent,
     "softmax-xent [--rows R] [--classes C] [--backward] [--check] [--repeat-bitwise] [--dtype f32|f64] "
     "[--threads T] [--reps R] [--json]: the fused softmax cross-entropy"},
    {"update", ffnc_bench_update,
     "update [--optimizer sgd|momentum|adam] [--n N] [--check] [--repeat-bitwise] [--dtype f32|f64] "
     "[--threads T] [--reps R] [--json]: one optimizer update over N parameters"},
    {"all", ffnc_bench_all,
     "all [--check] [--repeat-bitwise] [--dtype f32|f64] [--threads T] [--json]: the standard suite "
     "(gemm, dense, softmax-xent, update, mlp)"},
    {"threshold", ffnc_bench_threshold,
     "threshold [--dtype f32|f64] [--reps R]: 1 thread vs all threads over sizes; where threading starts to pay"},
};
static const int n_subcommands = (int)(sizeof subcommands / sizeof subcommands[0]);

static void print_help(FILE *out) {
    fprintf(out,
            "ffnc-bench %s: benchmarks of the ffnc C kernels\n\n"
            "usage: ffnc-bench <subcommand> [options]\n\nsubcommands:\n",
            ffnc_version());
    for (int i = 0; i < n_subcommands; i++) fprintf(out, "  %s\n", subcommands[i].usage);
    fprintf(out,
            "\ncommon options: --dtype f32|f64 (default f32), --threads T (default: ffnc's "
            "default), --reps R, --json (one JSON object per case)\n"
            "verification: --check compares each kernel with a plain C reference before "
            "timing; --repeat-bitwise runs it twice and compares the results bit for bit\n"
            "environment: FFNC_ISA=generic|avx2|avx512 forces the ISA path\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (ffnc_isa_env_status() != FFNC_OK) {
        fprintf(stderr, "ffnc-bench: FFNC_ISA: %s\n", ffnc_status_string(ffnc_isa_env_status()));
        return 2;
    }
    for (int i = 0; i < n_subcommands; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0) return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ffnc-bench: unknown subcommand '%s'\n\n", argv[1]);
    print_help(stderr);
    return 2;
}
