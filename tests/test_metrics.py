import numpy as np
import pytest

from utils import metrics

# The official recognition test case of the GLDv2 metric code (DELF repository).
OFFICIAL_SOLUTION = {"q1": [0, 12], "q2": [100, 200, 300], "q3": [1], "q4": [], "q5": []}
OFFICIAL_PREDICTIONS = {"q2": (0, 0.01), "q3": (1, 10.0), "q4": (150, 15.0)}


def official_flags():
    ids = list(OFFICIAL_SOLUTION)
    has = np.array([i in OFFICIAL_PREDICTIONS for i in ids])
    conf = np.array([OFFICIAL_PREDICTIONS.get(i, (0, 0.0))[1] for i in ids])
    correct = np.array(
        [
            i in OFFICIAL_PREDICTIONS and OFFICIAL_PREDICTIONS[i][0] in OFFICIAL_SOLUTION[i]
            for i in ids
        ]
    )
    landmark = np.array([bool(OFFICIAL_SOLUTION[i]) for i in ids])
    return correct, conf, has, landmark


def test_official_values():
    flags = official_flags()
    assert metrics.gap_from_correct(*flags) == pytest.approx(0.166667, abs=1e-6)
    assert metrics.gap_from_correct(*flags, ignore_non_landmarks=True) == pytest.approx(
        0.333333, abs=1e-6
    )


def test_kaggle_2020_documentation_example():
    truth = {
        "001": 123,
        "002": None,
        "003": 999,
        "004": 123,
        "005": 999,
        "006": 888,
        "007": 666,
        "008": 666,
        "009": None,
        "010": 666,
    }
    pred = {
        "001": (123, 0.15),
        "002": (123, 0.10),
        "003": (999, 0.30),
        "005": (999, 0.40),
        "007": (555, 0.60),
        "008": (666, 0.70),
        "010": (666, 0.99),
    }
    ids = sorted(truth)
    predicted = np.array([pred.get(i, (-1, 0))[0] for i in ids])
    confidence = np.array([pred.get(i, (-1, 0.0))[1] for i in ids])
    true = np.array([-1 if truth[i] is None else truth[i] for i in ids])
    assert metrics.gap(predicted, confidence, true) == pytest.approx(0.5479166666666, abs=1e-12)


def test_hand_worked_cases():
    # all correct -> 1; one of two correct, the wrong one ranked first -> (1/2)/2
    assert metrics.gap([1, 2], [0.9, 0.8], [1, 2]) == 1.0
    assert metrics.gap([9, 2], [0.9, 0.8], [1, 2]) == pytest.approx(0.25)
    # no prediction takes no rank: only q2 predicted, correctly -> 1/M with M = 2
    assert metrics.gap([-1, 2], [0.0, 0.1], [1, 2]) == pytest.approx(0.5)
    # a prediction for a non-landmark query counts as wrong
    assert metrics.gap([7, 2], [0.9, 0.8], [-1, 2]) == pytest.approx(0.5)
    assert metrics.gap([7, 2], [0.9, 0.8], [-1, 2], ignore_non_landmarks=True) == 1.0
    # ties keep the input order
    assert metrics.gap([9, 2], [0.5, 0.5], [1, 2]) == pytest.approx(0.25)
    assert metrics.gap([2, 9], [0.5, 0.5], [2, 1]) == pytest.approx(0.5)


def test_empty_and_undefined():
    assert np.isnan(metrics.gap([-1], [0.0], [-1]))
    assert metrics.gap([-1, -1], [0.0, 0.0], [3, 4]) == 0.0
    assert np.isnan(metrics.accuracy(np.array([]), np.array([])))
    with pytest.raises(ValueError, match="shape"):
        metrics.gap_from_correct([True], [0.1, 0.2], [True], [True])


def plain_gap(predicted, confidence, truth):
    order = sorted(
        (i for i in range(len(predicted)) if predicted[i] != -1), key=lambda i: -confidence[i]
    )
    hits, total = 0, 0.0
    for rank, i in enumerate(order, 1):
        if truth[i] != -1 and predicted[i] == truth[i]:
            hits += 1
            total += hits / rank
    return total / sum(t != -1 for t in truth)


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    n = 500
    truth = np.where(rng.random(n) < 0.3, -1, rng.integers(0, 20, n))
    predicted = np.where(rng.random(n) < 0.1, -1, rng.integers(0, 20, n))
    right = rng.random(n) < 0.4
    predicted[right] = truth[right]
    confidence = rng.random(n)
    assert metrics.gap(predicted, confidence, truth) == pytest.approx(
        plain_gap(predicted, confidence, truth), abs=1e-12
    )


def test_gap_at_k_by_hand():
    predicted = np.array([[1, 2], [3, 4], [5, -1]])
    confidence = np.array([[0.9, 0.1], [0.8, 0.7], [0.6, 0.0]])
    truth = np.array([2, 4, -1])
    # pooled by confidence: 1(w) 3(w) 4(c) 5(w) 2(c): P = 1/3 at rank 3, 2/5 at rank 5; M = 2
    assert metrics.gap_at_k(predicted, confidence, truth) == pytest.approx((1 / 3 + 2 / 5) / 2)


def test_gap_at_1_equals_gap():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 100)
    predicted = rng.integers(0, 5, 100)
    confidence = rng.random(100)
    assert metrics.gap_at_k(predicted[:, None], confidence[:, None], truth) == pytest.approx(
        metrics.gap(predicted, confidence, truth)
    )


def test_gap_at_k_counts_a_query_once():
    assert metrics.gap_at_k(np.array([[3, 3]]), np.array([[0.9, 0.8]]), np.array([3])) == 1.0


def test_a_million_predictions():
    rng = np.random.default_rng(0)
    n = 1_000_000
    truth, predicted = rng.integers(0, 1000, n), rng.integers(0, 1000, n)
    assert 0 < metrics.gap(predicted, rng.random(n), truth) < 0.01  # random: about 1/1000
