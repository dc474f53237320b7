"""ffnc.sklearn.MLPClassifier vs sklearn.neural_network.MLPClassifier at equal settings: time
and test accuracy in one run, on the shipped digits and on a 20,000 x 100 synthetic set.

    python bench/sklearn_compare.py [--threads 1,2] [--repeats 3] [--epochs-digits 50]
                                    [--epochs-synthetic 20] [--hidden 100] [--batch 200]

Equal settings: the same hidden layer sizes, relu, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8),
alpha 1e-4, the batch size, shuffling, random_state, and the same number of epochs for both:
early stopping off, tol 0 and n_iter_no_change above max_iter, so both run max_iter epochs
(the convergence warning is expected and silenced). Both train in float32 (sklearn keeps
float32 X in float32); sklearn is also timed on float64 X, its default. The thread count is
set for both: ffnc's threads= and threadpoolctl's limit for sklearn's BLAS. Times are the
best of --repeats fits (wall clock); accuracies are those of the first repeat (every repeat
is identical: fixed seeds). The process CPU time of the fits is compared too: with one
thread it is the measure a busy machine disturbs least. Prints the machine, versions, threads
and the load average (a loaded machine makes multi-threaded wall times meaningless: each
parallel region waits for every thread of its team to be scheduled).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def datasets(seed: int = 0):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from ffnc import datasets as ffnc_datasets

    x, y = ffnc_datasets.load_digits(normalize=True)
    digits = ffnc_datasets.train_test_split(x, y, seed=seed, stratify=True)
    x, y = make_classification(n_samples=20_000, n_features=100, n_informative=40,
                               n_redundant=20, n_classes=10, n_clusters_per_class=2,
                               class_sep=1.5, random_state=seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2,
                                                        random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    synthetic = (scaler.transform(x_train).astype(np.float32),
                 scaler.transform(x_test).astype(np.float32), y_train, y_test)
    return {"digits": digits, "synthetic 20000x100": synthetic}


def settings(hidden: tuple[int, ...], epochs: int, batch: int) -> dict:
    return dict(hidden_layer_sizes=hidden, activation="relu", solver="adam", alpha=1e-4,
                batch_size=batch, learning_rate_init=1e-3, max_iter=epochs, shuffle=True,
                random_state=0, tol=0.0, early_stopping=False, n_iter_no_change=epochs + 1,
                beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def timed_fit(estimator_class, params: dict, x, y, x_test, y_test, repeats: int,
              threads: int):
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    best, best_cpu, accuracy, epochs = np.inf, np.inf, None, None
    for _ in range(repeats):
        est = estimator_class(**params)
        with warnings.catch_warnings(), threadpool_limits(threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            tic, cpu = time.perf_counter(), time.process_time()
            est.fit(x, y)
            best = min(best, time.perf_counter() - tic)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        if accuracy is None:
            accuracy, epochs = est.score(x_test, y_test), est.n_iter_
    return best, accuracy, epochs, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs-digits", type=int, default=50)
    parser.add_argument("--epochs-synthetic", type=int, default=20)
    parser.add_argument("--hidden", default="100", help="hidden sizes, e.g. 256,128")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    import sklearn
    from sklearn.neural_network import MLPClassifier as SkMLP

    import ffnc
    from ffnc.sklearn import MLPClassifier

    hidden = tuple(int(h) for h in args.hidden.split(","))
    thread_counts = [int(t) for t in args.threads.split(",")]
    print(ffnc.config_text())
    print(f"  cpu:             {ffnc.cpu_model()}, {os.cpu_count()} logical cpus, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"  scikit-learn:    {sklearn.__version__}")
    print(f"settings: hidden {hidden}, relu, adam lr 1e-3, alpha 1e-4, batch {args.batch}, "
          f"epochs {args.epochs_digits} (digits) / {args.epochs_synthetic} (synthetic), "
          f"no early stopping; best of {args.repeats} fits\n")
    header = (f"{'data':<20} {'thr':>3}  {'ffnc s':>8} {'sk f32 s':>8} {'sk f64 s':>8}  "
              f"{'speedup f32':>11} {'f64':>6}  {'cpu-time speedup f32':>20} {'f64':>6}  "
              f"{'acc ffnc':>8} {'acc sk32':>8} {'acc sk64':>8}  epochs")
    print(header)
    print("-" * len(header))
    for name, (x, x_test, y, y_test) in datasets().items():
        epochs = args.epochs_digits if name == "digits" else args.epochs_synthetic
        common = settings(hidden, epochs, args.batch)
        x64, x_test64 = x.astype(np.float64), x_test.astype(np.float64)
        for threads in thread_counts:
            ours = timed_fit(MLPClassifier, dict(common, threads=threads), x, y, x_test,
                             y_test, args.repeats, threads)
            sk32 = timed_fit(SkMLP, common, x, y, x_test, y_test, args.repeats, threads)
            sk64 = timed_fit(SkMLP, common, x64, y, x_test64, y_test, args.repeats, threads)
            print(f"{name:<20} {threads:>3}  {ours[0]:8.3f} {sk32[0]:8.3f} {sk64[0]:8.3f}  "
                  f"{sk32[0] / ours[0]:10.2f}x {sk64[0] / ours[0]:5.2f}x  "
                  f"{sk32[3] / ours[3]:19.2f}x {sk64[3] / ours[3]:5.2f}x  {ours[1]:8.4f} "
                  f"{sk32[1]:8.4f} {sk64[1]:8.4f}  {ours[2]}/{sk32[2]}/{sk64[2]}", flush=True)


if __name__ == "__main__":
    main()
