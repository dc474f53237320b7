#include <stdio.h>
#include "ffnc.h"
int main(int argc, char **argv) { printf("ffnc-bench %s\n", ffnc_version()); return 0; }
