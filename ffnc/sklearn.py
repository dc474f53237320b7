"""scikit-learn estimators backed by ffnc: MLPClassifier and MLPRegressor.

    >>> from ffnc.sklearn import MLPClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,),
    ...                                                     random_state=0))
    >>> clf.fit(x_train, y_train).score(x_test, y_test)

They follow scikit-learn's estimator API (fit, predict, predict_proba, score, partial_fit,
get_params/set_params, clone, Pipeline, GridSearchCV) and sklearn.neural_network's parameter
names where they mean the same thing, with the same defaults: hidden_layer_sizes, activation,
solver, alpha, batch_size, learning_rate_init, max_iter, shuffle, random_state, tol, verbose,
warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2,
epsilon, n_iter_no_change. The same settings give the same algorithm: sklearn's Glorot-uniform
initialisation of weights and intercepts, its loss (half squared error for regression, log loss
summed over labels for multilabel problems: ffnc's optimizer settings are rescaled to match),
its stopping rules on the training loss or, with early_stopping, on the validation score
(accuracy or R^2), restoring the best weights. Differences: alpha's L2 term also decays the
intercepts (sklearn exempts them; alpha / batch_size is tiny either way); solver "lbfgs" and
learning_rate schedules other than constant are not offered; sparse X is not accepted.

ffnc's own parameters: activation may be a list (one per hidden layer) and take any ffnc
activation besides sklearn's four; dropout (a rate, or one per hidden layer); solver also
"adamw" (alpha is then the decoupled weight decay) and "rmsprop" (smoothing beta_2); dtype
("float32", the default and ffnc's fast path, or "float64": X is converted to it); threads
(the thread count for fit and predict; default ffnc's setting).

Training runs ffnc.train.fit on an ffnc.nn.Sequential (``model_``): one compiled plan, one
call into C per epoch. Known limit: partial_fit and warm_start continue from the current
weights but restart the optimizer's state (Adam's moments, momentum) at each call, because
ffnc.train.fit does not carry optimizer state between calls.

scikit-learn is an optional extra: ``pip install "ffnc[sklearn]"``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, column_or_1d
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError('ffnc.sklearn needs scikit-learn, an optional extra of ffnc: '
                      'pip install "ffnc[sklearn]"') from exc

import numpy as np

import ffnc.nn as nn
from ffnc import train
from ffnc._threads import MAX_THREADS
from ffnc._threads import threads as thread_count
from ffnc.nn.initializers import Uniform

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["MLPClassifier", "MLPRegressor", "EXPECTED_FAILED_CHECKS"]

# sklearn's names for activations that ffnc calls differently.
_SKLEARN_ACTIVATIONS = {"logistic": "sigmoid"}
SOLVERS = ("sgd", "adam", "adamw", "rmsprop")

# The scikit-learn estimator checks (sklearn.utils.estimator_checks) these estimators are
# known to fail, with the reason; pass it as check_estimator(..., expected_failed_checks=...).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"MLPClassifier": {}, "MLPRegressor": {}}


# ---- parameter checks -----------------------------------------------------------------------

def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _real(name: str, value: Any, low: float, high: float | None = None, *,
          low_open: bool = False, high_open: bool = True) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
    if not ok:
        lo = "(" if low_open else "["
        hi = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {lo}{low}, {hi}, got {value!r}")
    return float(value)


def _per_layer(name: str, value: Any, layers: int, check) -> list:
    """A setting given once for every hidden layer or as a sequence of one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != layers:
            raise ValueError(f"{name} has {len(value)} entries but hidden_layer_sizes has "
                             f"{layers} layers; give one value or one per hidden layer")
        return [check(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return [check(name, value)] * layers


def _activation(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an activation name, got {value!r}")
    act = _SKLEARN_ACTIVATIONS.get(value, value)
    if act not in nn.layers.ACTIVATION_NAMES:
        known = ", ".join(sorted(set(nn.layers.ACTIVATION_NAMES) | set(_SKLEARN_ACTIVATIONS)))
        raise ValueError(f"{name} must be one of {known}; got {value!r}")
    return act


def _dropout_rate(name: str, value: Any) -> float:
    return _real(name, value, 0.0, 1.0)


# ---- the shared estimator -------------------------------------------------------------------

class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, model building, training."""

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: str | Sequence[str] = "relu", *, solver: str = "adam",
                 alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate_init: float = 0.001, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
                 warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 dropout: float | Sequence[float] = 0.0, dtype: str = "float32",
                 threads: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.dtype = dtype
        self.threads = threads

    # -- parameters --

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                             f"{self.hidden_layer_sizes!r}") from None
        return [_positive_int(f"hidden_layer_sizes[{i}]", s) for i, s in enumerate(sizes)]

    def _check_params(self) -> None:
        sizes = self._hidden_sizes()
        self._activations = _per_layer("activation", self.activation, len(sizes), _activation)
        if isinstance(self.activation, (list, tuple)) and not sizes:
            raise ValueError("activation is a list but there are no hidden layers")
        self._dropouts = _per_layer("dropout", self.dropout, len(sizes), _dropout_rate)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}"
                             + ("; ffnc.sklearn trains with first-order solvers only"
                                if self.solver == "lbfgs" else ""))
        _real("alpha", self.alpha, 0.0)
        if not (self.batch_size == "auto" or isinstance(self.batch_size, numbers.Integral)
                and not isinstance(self.batch_size, bool)):
            raise ValueError(f"batch_size must be 'auto' or an int, got {self.batch_size!r}")
        _real("learning_rate_init", self.learning_rate_init, 0.0, low_open=True)
        _positive_int("max_iter", self.max_iter)
        _real("tol", self.tol, 0.0)
        _real("momentum", self.momentum, 0.0, 1.0, high_open=False)
        _real("validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True)
        _real("beta_1", self.beta_1, 0.0, 1.0)
        _real("beta_2", self.beta_2, 0.0, 1.0)
        _real("epsilon", self.epsilon, 0.0, low_open=True)
        _positive_int("n_iter_no_change", self.n_iter_no_change)
        if self.threads is not None and _positive_int("threads", self.threads) > MAX_THREADS:
            raise ValueError(f"threads must be <= {MAX_THREADS}, got {self.threads}")
        try:
            self._dtype = np.dtype(self.dtype)
        except TypeError:
            self._dtype = None
        if self._dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    # -- the model --

    def _build_model(self, n_features: int, n_outputs: int, loss: str, seed: int) -> nn.Sequential:
        sizes = self._hidden_sizes()
        layers: list[nn.Layer] = []
        fan_in = n_features
        for units, act, rate in zip(sizes, self._activations, self._dropouts, strict=True):
            layers.append(self._dense(units, act, fan_in, act))
            if rate > 0:
                layers.append(nn.Dropout(rate))
            fan_in = units
        all_logistic = bool(sizes) and all(a == "sigmoid" for a in self._activations)
        layers.append(self._dense(n_outputs, "identity", fan_in,
                                  "sigmoid" if all_logistic else "identity"))
        return nn.Sequential(layers, input_shape=(n_features,), dtype=self._dtype, seed=seed,
                             loss=loss)

    @staticmethod
    def _dense(units: int, activation: str, fan_in: int, init_for: str) -> nn.Dense:
        # sklearn's initialisation: weights and intercepts uniform in +-sqrt(f / (in + out)),
        # f = 2 for logistic units, else 6 (Glorot).
        factor = 2.0 if init_for == "sigmoid" else 6.0
        bound = float(np.sqrt(factor / (fan_in + units)))
        init = Uniform(-bound, bound)
        return nn.Dense(units, activation=activation, kernel_initializer=init,
                        bias_initializer=init)

    def _optimizer(self, batch: int, gradient_scale: float) -> Any:
        """The ffnc optimizer whose steps on ffnc's loss equal sklearn's steps (ffnc's gradient
        = gradient_scale x sklearn's), L2 term alpha / batch included."""
        from ffnc import optim

        lr, s = float(self.learning_rate_init), gradient_scale
        decay = s * float(self.alpha) / batch
        if self.solver == "sgd":
            if self.momentum == 0:
                return optim.SGD(lr=lr / s, weight_decay=decay)
            return optim.Momentum(lr=lr / s, momentum=float(self.momentum), weight_decay=decay,
                                  nesterov=bool(self.nesterovs_momentum))
        # Adam and RMSprop steps do not change when the loss is scaled, but for epsilon.
        if self.solver == "adam":
            return optim.Adam(lr=lr, beta1=float(self.beta_1), beta2=float(self.beta_2),
                              eps=s * float(self.epsilon), weight_decay=decay)
        if self.solver == "adamw":
            return optim.AdamW(lr=lr, beta1=float(self.beta_1), beta2=float(self.beta_2),
                               eps=s * float(self.epsilon), weight_decay=float(self.alpha))
        return optim.RMSprop(lr=lr, alpha=float(self.beta_2), eps=s * float(self.epsilon),
                             weight_decay=decay)

    # -- training --

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> _BaseMLP:
        self._check_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "model_")
        X, y = self._validate_xy(X, y, reset=first, classes=classes, incremental=incremental)
        n = len(X)
        if first:
            self._random_state = check_random_state(self.random_state)
            self.n_layers_ = len(self._hidden_sizes()) + 2
            self.n_outputs_ = y.shape[1] if y.ndim == 2 else (
                len(self.classes_) if self._loss_name() == "softmax_cross_entropy" else 1)
            seed = int(self._random_state.randint(0, 2**31 - 1))
            self.model_ = self._build_model(X.shape[1], self.n_outputs_, self._loss_name(), seed)
            self.loss_curve_ = []
            self.t_ = 0
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.validation_scores_ = None
                self.best_validation_score_ = None
                self.best_loss_ = np.inf
        elif self.model_.dtype != self._dtype:
            raise ValueError(f"dtype changed from {self.model_.dtype.name} to "
                             f"{self._dtype.name} since the model was built; refit from scratch "
                             f"(warm_start=False)")

        validation = None
        early = self.early_stopping and not incremental
        if early:
            X, y, validation = self._split_validation(X, y)
            n = len(X)
        batch = self._batch_size(n)
        epochs = 1 if incremental else int(self.max_iter)
        monitor = _Monitor(self, validation, early, batch, n)
        history = train.fit(self.model_, X, self._training_target(y), optimizer=self._optimizer(
            batch, self._gradient_scale()), epochs=epochs, batch_size=batch,
            shuffle=bool(self.shuffle), seed=int(self._random_state.randint(0, 2**31 - 1)),
            metrics=[], callbacks=[monitor], verbose=0, threads=self.threads)
        ran = len(history.epoch)
        self.n_iter_ = (getattr(self, "n_iter_", 0) if incremental or not first else 0) + ran
        self.t_ += ran * n
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        if early and monitor.best_flat is not None:
            np.copyto(self.model_.flat, monitor.best_flat)
        if not incremental and not monitor.stopped and ran == epochs:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        return self

    def _split_validation(self, X: np.ndarray, y: np.ndarray):
        stratify = y if self._stratify_validation(y) else None
        try:
            X, X_val, y, y_val = train_test_split(X, y, random_state=self._random_state,
                                                  test_size=self.validation_fraction,
                                                  stratify=stratify)
        except ValueError:
            X, X_val, y, y_val = train_test_split(X, y, random_state=self._random_state,
                                                  test_size=self.validation_fraction)
        if len(X_val) < 2:
            raise ValueError("The validation set is too small: increase validation_fraction or "
                             "the size of the data, or set early_stopping=False")
        return np.ascontiguousarray(X), np.ascontiguousarray(y), (
            np.ascontiguousarray(X_val), y_val)

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if not 1 <= self.batch_size <= n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", stacklevel=4)
        return int(np.clip(self.batch_size, 1, n))

    def _run_with_threads(self, fn, *args):
        if self.threads is None:
            return fn(*args)
        with thread_count(self.threads):
            return fn(*args)

    def _forward(self, X: Any) -> np.ndarray:
        """The output units' values (probabilities or regression values) for X: computed in
        the model's dtype, returned as float32 for float32 X and as float64 otherwise (as
        sklearn's estimators do)."""
        check_is_fitted(self, "model_")
        out_dtype = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
        X = _validate_data(self, X, reset=False, dtype=self.model_.dtype, order="C",
                           accept_sparse=False)
        out = self._run_with_threads(train.predict, self.model_, X)
        return out.astype(out_dtype, copy=False)

    # -- sklearn's view of the weights --

    def _weights(self, kind: str) -> list[np.ndarray]:
        check_is_fitted(self, "model_")
        return [p for name, p in self.model_.named_parameters().items()
                if name.endswith("." + kind)]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, coefs_[i] of shape (units in, units out): views of the ffnc
        model's parameters (writing to them changes the model)."""
        return self._weights("weight")

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, views of the ffnc model's parameters."""
        return self._weights("bias")

    # -- pickling: the ffnc model travels as its config and weights --

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            state["_model_config"] = model.get_config()
            state["_model_flat"] = np.array(model.flat)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        config = state.pop("_model_config", None)
        flat = state.pop("_model_flat", None)
        self.__dict__.update(state)
        if config is not None:
            model = nn.from_config(config)
            np.copyto(model.flat, flat)
            self.model_ = model

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multilabel": isinstance(self, ClassifierMixin),
                "multioutput": isinstance(self, RegressorMixin)}


class _Monitor(train.Callback):
    """sklearn's per-epoch bookkeeping as an ffnc.train callback: the loss curve (with the
    L2 term, in sklearn's loss units), the stopping rule on the training loss or on the
    validation score, the best weights for early stopping, verbose output."""

    def __init__(self, estimator: _BaseMLP, validation, early: bool, batch: int,
                 rows: int) -> None:
        self.est, self.validation, self.early = estimator, validation, early
        self.steps_per_row = -(-rows // batch) / rows
        self.best_flat: np.ndarray | None = None
        self.stopped = False
        self.model = estimator.model_

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        est = self.est
        squares = sum(float(np.dot(w.ravel(), w.ravel())) for w in est.coefs_)
        loss = logs["loss"] / est._loss_scale() + 0.5 * float(est.alpha) * squares \
            * self.steps_per_row
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {len(est.loss_curve_)}, loss = {loss:.8f}")
        if self.early:
            x_val, y_val = self.validation
            score = est._validation_score(x_val, y_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:.6f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_flat = np.array(self.model.flat)
        elif est.best_loss_ is not None:  # None: partial_fit of an early-stopping model
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if loss < est.best_loss_:
                est.best_loss_ = loss
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.early else "Training loss"
            if est.verbose:
                print(f"{what} did not improve more than tol={est.tol} for "
                      f"{est.n_iter_no_change} consecutive epochs. Stopping.")
            est._no_improvement_count = 0
            self.stopped = True
            return True
        return False


# ---- the estimators -------------------------------------------------------------------------

class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by ffnc (see the module docstring).

    Binary problems use one logistic output unit, multiclass ones a softmax over the classes,
    multilabel ones (y a 0/1 indicator matrix) one logistic unit per label.

    Fitted attributes as sklearn's MLPClassifier: classes_, loss_, best_loss_, loss_curve_,
    validation_scores_, best_validation_score_, t_, coefs_, intercepts_, n_features_in_,
    feature_names_in_ (when X has string column names), n_iter_, n_layers_, n_outputs_,
    out_activation_; and model_, the trained ffnc.nn.Sequential.
    """

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Trains from scratch (or from the current weights with warm_start=True) on X, y."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over X, y from the current weights. classes (all labels that will ever
        appear) is required on the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of each row (for multilabel problems, a 0/1 row per sample)."""
        proba = self._forward(X)
        return self._label_binarizer.inverse_transform(proba)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The class probabilities, shape (n_samples, n_classes), in classes_ order (for
        multilabel problems, each label's probability)."""
        proba = self._forward(X)
        if self.n_outputs_ == 1 and self._label_binarizer.y_type_ == "binary":
            return np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of predict_proba."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    # -- internals --

    def _loss_name(self) -> str:
        return "softmax_cross_entropy" if self._label_binarizer.y_type_ == "multiclass" \
            else "bce"

    def _loss_scale(self) -> float:
        # sklearn sums the log loss over labels; ffnc's bce averages over output units
        return 1.0 / self.n_outputs_ if self._label_binarizer.y_type_ == "multilabel-indicator" \
            else 1.0

    def _gradient_scale(self) -> float:
        return self._loss_scale()

    def _stratify_validation(self, y: np.ndarray) -> bool:
        return self._label_binarizer.y_type_ != "multilabel-indicator"

    def _validate_xy(self, X, y, *, reset, classes, incremental):
        X, y = _validate_data(self, X, y, reset=reset, dtype=self._dtype, order="C",
                              multi_output=True, accept_sparse=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            binarizer = LabelBinarizer()
            if classes is not None:
                binarizer.fit(np.asarray(classes))
                if type_of_target(y) == "multilabel-indicator":
                    binarizer.fit(y)
            else:
                binarizer.fit(y)
            if len(binarizer.classes_) < 2:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the "
                                 f"data, but the data contains only one class: "
                                 f"{binarizer.classes_[0]!r}")
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
            self.out_activation_ = "softmax" if binarizer.y_type_ == "multiclass" \
                else "logistic"
        elif classes is not None and incremental and \
                not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={np.unique(classes)!r} is not the same as on the first "
                             f"call to partial_fit: {self.classes_!r}")
        if self._label_binarizer.y_type_ != "multilabel-indicator":
            unseen = np.setdiff1d(np.unique(y), self.classes_)
            if len(unseen):
                raise ValueError(f"y contains labels not seen before (classes_ is "
                                 f"{self.classes_!r}): {unseen!r}")
        elif y.ndim != 2 or y.shape[1] != len(self.classes_):
            raise ValueError(f"y must be a multilabel indicator matrix with "
                             f"{len(self.classes_)} columns, got shape {y.shape}")
        return X, y

    def _training_target(self, y: np.ndarray) -> np.ndarray:
        if self._label_binarizer.y_type_ == "multiclass":
            return np.searchsorted(self.classes_, y).astype(np.int64)
        return np.ascontiguousarray(self._label_binarizer.transform(y), dtype=self._dtype)

    def _validation_score(self, x_val: np.ndarray, y_val: np.ndarray) -> float:
        proba = train.predict(self.model_, x_val)
        return float(accuracy_score(y_val, self._label_binarizer.inverse_transform(proba)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained by ffnc (see the module docstring): linear
    outputs, squared error; y may have several columns.

    Fitted attributes as sklearn's MLPRegressor: loss_, best_loss_, loss_curve_,
    validation_scores_, best_validation_score_, t_, coefs_, intercepts_, n_features_in_,
    feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_; and model_.
    """

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Trains from scratch (or from the current weights with warm_start=True) on X, y."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over X, y from the current weights."""
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted values, shape (n_samples,) or (n_samples, n_outputs)."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def _loss_name(self) -> str:
        return "mse"

    def _loss_scale(self) -> float:
        # sklearn's squared loss is half the mean squared error
        return 2.0

    def _gradient_scale(self) -> float:
        # but its gradient is that of half the squared error summed over the outputs (the
        # same for one output): sklearn steps as if its loss were k times the one it reports
        return 2.0 / self.n_outputs_

    def _stratify_validation(self, y: np.ndarray) -> bool:
        return False

    def _validate_xy(self, X, y, *, reset, classes, incremental):
        X, y = _validate_data(self, X, y, reset=reset, dtype=self._dtype, order="C",
                              multi_output=True, y_numeric=True, accept_sparse=False)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        if not reset and y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} outputs, the model was fitted with "
                             f"{self.n_outputs_}")
        if reset:
            self.out_activation_ = "identity"
            self.n_outputs_ = y.shape[1]
        return X, y

    def _training_target(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y, dtype=self._dtype)

    def _validation_score(self, x_val: np.ndarray, y_val: np.ndarray) -> float:
        return float(r2_score(y_val, train.predict(self.model_, x_val)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

