"""ffnc.sklearn: scikit-learn's own estimator checks, Pipeline and GridSearchCV, partial_fit,
clone, probabilities, and the same training steps as sklearn.neural_network at equal settings.

scikit-learn is an optional extra of ffnc; without it these tests are skipped (and a
subprocess test checks the ImportError that ffnc.sklearn then raises).
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import ffnc
from ffnc import datasets

sklearn = pytest.importorskip("sklearn", reason='scikit-learn is not installed: pip install '
                                                '"ffnc[sklearn]"')

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from ffnc.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load_digits(normalize=True)
    return x[:1200], y[:1200], x[1200:], y[1200:]


# ---- scikit-learn's estimator checks --------------------------------------------------------

# One thread: the checks fit hundreds of tiny problems, where thread wake-ups cost more than
# they save (and a loaded CI machine makes them dearer still).
@parametrize_with_checks([MLPClassifier(max_iter=100, threads=1),
                          MLPRegressor(max_iter=100, threads=1)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[
                             type(est).__name__])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---- the API in use ---------------------------------------------------------------------------

def test_pipeline_and_grid_search(digits):
    x, y, x_test, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0,
                                                         threads=1))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(16,), (64,)],
                               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(x, y)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                      "mlpclassifier__alpha"}
    assert grid.best_params_["mlpclassifier__hidden_layer_sizes"] == (64,)
    assert grid.score(x_test, y_test) > 0.85
    assert len(grid.cv_results_["mean_test_score"]) == 4


def test_clone_keeps_parameters_and_drops_the_fit(digits):
    x, y, _, _ = digits
    est = MLPClassifier(hidden_layer_sizes=[32, 16], activation=["relu", "tanh"],
                        dropout=[0.1, 0.0], dtype="float64", solver="sgd", max_iter=3,
                        random_state=7, threads=1).fit(x, y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "model_") and not hasattr(twin, "classes_")
    np.testing.assert_array_equal(twin.fit(x, y).predict_proba(x), est.predict_proba(x))
    assert [w.shape for w in est.coefs_] == [(64, 32), (32, 16), (16, 10)]
    assert est.model_.dtype == np.float64
    assert [layer["class"] for layer in est.model_.get_config()["layers"]] == \
        ["Dense", "Dropout", "Dense", "Dense"]


def test_set_params_and_errors_name_the_parameter(digits):
    x, y, _, _ = digits
    est = MLPClassifier().set_params(solver="lbfgs")
    with pytest.raises(ValueError, match="solver must be one of"):
        est.fit(x, y)
    with pytest.raises(ValueError, match="activation has 3 entries"):
        MLPClassifier(hidden_layer_sizes=(4, 4), activation=["relu"] * 3).fit(x, y)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPClassifier(activation="swishy").fit(x, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(dropout=1.5).fit(x, y)
    with pytest.raises(ValueError, match="dtype must be"):
        MLPClassifier(dtype="float16").fit(x, y)


def test_predict_proba_rows_sum_to_one(digits):
    x, y, x_test, _ = digits
    multi = MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0,
                          threads=1).fit(x, y)
    p = multi.predict_proba(x_test)
    assert p.shape == (len(x_test), 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(multi.classes_[p.argmax(axis=1)], multi.predict(x_test))
    labels = np.where(y > 4, "big", "small")
    binary = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                           threads=1).fit(x.astype(np.float64), labels)
    q = binary.predict_proba(x_test.astype(np.float64))
    assert q.shape == (len(x_test), 2) and q.dtype == np.float64
    np.testing.assert_allclose(q.sum(axis=1), 1, rtol=1e-12)
    assert binary.out_activation_ == "logistic" and binary.n_outputs_ == 1
    np.testing.assert_array_equal(binary.classes_[q.argmax(axis=1)],
                                  binary.predict(x_test.astype(np.float64)))


def test_partial_fit_continues_training(digits):
    x, y, _, _ = digits
    est = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0,
                        threads=1)
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(x[:100], y[:100])
    est.partial_fit(x[:600], y[:600], classes=np.arange(10))
    first = est.loss_curve_[-1]
    for _ in range(8):
        est.partial_fit(x[600:], y[600:])
        est.partial_fit(x[:600], y[:600])
    assert est.n_iter_ == 17 and len(est.loss_curve_) == 17
    assert est.loss_curve_[-1] < 0.5 * first
    assert est.t_ == 600 * 9 + 600 * 8
    with pytest.raises(ValueError, match="not seen before"):
        est.partial_fit(x[:10], y[:10] + 10)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(x[:10, :5], y[:10])
    # early stopping does not apply to partial_fit (as in sklearn): one epoch per call
    stopping = MLPRegressor(early_stopping=True, hidden_layer_sizes=(8,), threads=1)
    stopping.partial_fit(x[:100], y[:100].astype(np.float32))
    stopping.partial_fit(x[:100], y[:100].astype(np.float32))
    assert stopping.n_iter_ == 2 and stopping.validation_scores_ == []


def test_early_stopping_restores_the_best_validation_score(digits):
    x, y, _, _ = digits
    est = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=3,
                        max_iter=200, random_state=0, threads=1).fit(x, y)
    assert est.n_iter_ < 200
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None


def test_regressor_multioutput_and_feature_names():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4))
    y = np.stack([x @ [1.0, -2.0, 0.5, 0.0], np.sin(x[:, 0])], axis=1)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    est = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0,
                       threads=1).fit(frame, y)
    assert list(est.feature_names_in_) == ["a", "b", "c", "d"]
    assert est.predict(frame).shape == (300, 2)
    assert est.score(frame, y) > 0.9


# ---- the same algorithm as sklearn.neural_network ---------------------------------------------

def _equal_start(ours, theirs, x, y):
    """Fits both for one epoch, then gives ffnc sklearn's weights and both warm starts."""
    ours.fit(x, y)
    theirs.fit(x, y)
    for mine, sk in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                        strict=True):
        mine[...] = sk
    ours.set_params(warm_start=True, max_iter=6)
    theirs.set_params(warm_start=True, max_iter=6)
    ours.fit(x, y)
    theirs.fit(x, y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_equal_settings_take_the_same_steps_as_sklearn(digits, solver):
    x, y, _, _ = digits
    x, y = x[:400].astype(np.float64), y[:400]
    # full-batch steps without shuffling, so the data order cannot differ; alpha=0 because
    # sklearn exempts the intercepts from the L2 term and ffnc does not
    settings = dict(hidden_layer_sizes=(24, 12), activation="tanh", solver=solver, alpha=0.0,
                    batch_size=400, learning_rate_init=0.05 if solver == "sgd" else 0.01,
                    max_iter=1, shuffle=False, tol=0.0, n_iter_no_change=1000,
                    random_state=0)
    ours = MLPClassifier(dtype="float64", threads=1, **settings)
    theirs = SkMLPClassifier(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _equal_start(ours, theirs, x, y)
    # sgd: the same arithmetic up to rounding; adam: sklearn adds epsilon before the bias
    # correction of the step size, ffnc after (as PyTorch): a relative 2e-5 here
    # on the loss; a weight whose gradient is ~epsilon (an almost always blank pixel's) may
    # then take a different part of its steps of at most lr
    loss_rtol, weight_atol, proba_atol = (1e-9, 1e-9, 1e-9) if solver == "sgd" \
        else (1e-4, 6 * 0.01, 1e-3)
    np.testing.assert_allclose(ours.loss_curve_[-6:], theirs.loss_curve_[-6:], rtol=loss_rtol)
    for mine, sk in zip(ours.coefs_, theirs.coefs_, strict=True):
        np.testing.assert_allclose(mine, sk, rtol=0, atol=weight_atol)
    np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=0,
                               atol=proba_atol)


def test_equal_settings_regression_matches_sklearns_loss_units():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 3))
    y = np.stack([x[:, 0] - x[:, 1], x[:, 2] ** 2], axis=1)
    settings = dict(hidden_layer_sizes=(16,), solver="sgd", momentum=0.9, alpha=0.0,
                    batch_size=200, learning_rate_init=0.01, max_iter=1, shuffle=False,
                    tol=0.0, n_iter_no_change=1000, random_state=0)
    ours = MLPRegressor(dtype="float64", threads=1, **settings)
    theirs = SkMLPRegressor(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _equal_start(ours, theirs, x, y)
    np.testing.assert_allclose(ours.loss_curve_[-6:], theirs.loss_curve_[-6:], rtol=1e-9)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), rtol=1e-8, atol=1e-10)


def test_equal_settings_reach_equal_accuracy(digits):
    x, y, x_test, y_test = digits
    settings = dict(hidden_layer_sizes=(64,), max_iter=40, random_state=0, batch_size=64)
    ours = MLPClassifier(threads=1, **settings).fit(x, y)
    theirs = SkMLPClassifier(**settings).fit(x, y)
    assert abs(ours.score(x_test, y_test) - theirs.score(x_test, y_test)) < 0.03
    assert ours.n_iter_ == theirs.n_iter_


# ---- an optional extra ----------------------------------------------------------------------

def test_sklearn_is_optional():
    root = os.path.dirname(os.path.dirname(ffnc.__file__))
    code = """
import json, sys
sys.modules["sklearn"] = None      # as if scikit-learn were not installed
import ffnc
out = {"imported": "sklearn" in sys.modules and sys.modules["sklearn"] is not None}
try:
    import ffnc.sklearn
except ImportError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + sys.path))
    result = subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["imported"] is False
    assert 'pip install "ffnc[sklearn]"' in out["error"]


def test_import_ffnc_does_not_import_sklearn():
    root = os.path.dirname(os.path.dirname(ffnc.__file__))
    code = "import sys, ffnc; print(sorted(m for m in ('sklearn', 'torch') if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + sys.path))
    result = subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
