"""Writes the UCI digits for the C example digits.c: a safetensors file with x_train (n, 64)
float32 in [0, 1], y_train (n,) int64, x_test and y_test (a seeded, stratified 80/20 split).

    python make_digits.py digits.safetensors
"""

import sys

from safetensors.numpy import save_file

from ffnc.datasets import load_digits, train_test_split


def main(path: str) -> None:
    x, y = load_digits(normalize=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, seed=0,
                                                        stratify=True)
    save_file({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, path)
    print(f"wrote {path}: {len(x_train)} training and {len(x_test)} test images")


if __name__ == "__main__":
    main(sys.argv[1])
