import math

import pandas as pd
import pytest

from utils import submission
from utils.cli import main as cli_main
from utils.submission import SubmissionError


def write(path, text):
    path.write_text(text)
    return path


def test_write_read_roundtrip(tmp_path):
    path = submission.write_submission(
        tmp_path / "sub.csv", ["a", "b", "c"], [12, None, -1], [0.5, 0.1, 0.2]
    )
    assert path.read_text() == "id,landmarks\na,12 0.5\nb,\nc,\n"
    frame = submission.read_submission(path)
    assert frame["landmark_id"].tolist() == [12, -1, -1]
    assert frame["confidence"].iloc[0] == 0.5 and math.isnan(frame["confidence"].iloc[1])
    with pytest.raises(ValueError, match="finite"):
        submission.format_prediction(3, float("inf"))


def test_valid_file_has_no_problems(tmp_path):
    sample = write(tmp_path / "sample.csv", "id,landmarks\na,\nb,\n")
    sub = write(tmp_path / "sub.csv", "id,landmarks\nb,7 0.25\na,\n")
    assert submission.validate_submission(sub, sample=sample) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id,landmarks\na,1 0.5\na,2 0.5\nb,\n", "1 id(s) appear more than once: a"),
        ("id,landmarks\na,1 0.5\n", "1 test id(s) have no row: b"),
        ("id,landmarks\na,\nb,\nzz,\n", "1 id(s) are not test ids: zz"),
        (
            "id,landmarks\na,1\nb,\n",
            "line 2 (id a): expected 'landmark_id confidence' (2 tokens), got 1",
        ),
        ("id,landmarks\na,1 0.5 3\nb,\n", "got 3"),
        ("id,landmarks\na,x 0.5\nb,\n", "landmark id 'x' is not an integer"),
        ("id,landmarks\na,1.5 0.5\nb,\n", "landmark id '1.5' is not an integer"),
        ("id,landmarks\na,1 high\nb,\n", "confidence 'high' is not a number"),
        ("id,landmarks\na,1 nan\nb,\n", "confidence 'nan' is not finite"),
        ("id,landmarks\na,1 inf\nb,\n", "confidence 'inf' is not finite"),
        ("id,prediction\na,1 0.5\n", "expected columns id,landmarks, found id,prediction"),
    ],
)
def test_every_validation_error(tmp_path, body, message):
    sub = write(tmp_path / "sub.csv", body)
    problems = submission.validate_submission(sub, test_ids=["a", "b"])
    assert len(problems) == 1 and message in problems[0] and str(sub) in problems[0]


def test_one_line_per_problem_and_a_cap(tmp_path):
    rows = "".join(f"id{i},bad\n" for i in range(30))
    sub = write(tmp_path / "sub.csv", "id,landmarks\n" + rows + "id0,\n")
    problems = submission.validate_submission(sub)
    assert len(problems) == 1 + submission.MAX_LINES + 1
    assert "and 10 more malformed values" in problems[-1]
    with pytest.raises(SubmissionError):
        submission.read_submission(sub)


def test_missing_files(tmp_path):
    assert "file not found" in submission.validate_submission(tmp_path / "none.csv")[0]
    sub = write(tmp_path / "sub.csv", "id,landmarks\na,\n")
    assert "file not found" in submission.validate_submission(sub, sample=tmp_path / "x.csv")[0]


def test_cli_validate(tmp_path, capsys):
    sample = write(tmp_path / "sample.csv", "id,landmarks\na,\nb,\n")
    good = write(tmp_path / "good.csv", "id,landmarks\na,1 0.5\nb,\n")
    bad = write(tmp_path / "bad.csv", "id,landmarks\na,1 0.5\n")
    assert cli_main(["validate", str(good), "--sample", str(sample)]) == 0
    assert "valid" in capsys.readouterr().out
    assert cli_main(["validate", str(bad), "--sample", str(sample)]) == 1
    assert "have no row: b" in capsys.readouterr().out


def test_score_and_metrics_cli(tmp_path, capsys):
    solution = write(
        tmp_path / "solution.csv", "id,landmarks\nq1,0 12\nq2,100 200 300\nq3,1\nq4,\nq5,\n"
    )
    sub = write(tmp_path / "sub.csv", "id,landmarks\nq2,0 0.01\nq3,1 10.0\nq4,150 15.0\nq5,\nq1,\n")
    result = submission.score(submission.read_solution(solution), submission.read_submission(sub))
    assert result["gap"] == pytest.approx(1 / 6) and result["accuracy"] == pytest.approx(1 / 3)
    assert cli_main(["gap", "--solution", str(solution), "--submission", str(sub)]) == 0
    out = capsys.readouterr().out
    assert "GAP 0.166667" in out and "accuracy 0.333333" in out
    partial = write(tmp_path / "partial.csv", "id,landmarks\nq3,1 0.9\nzz,1 0.1\n")
    assert cli_main(["gap", "--solution", str(solution), "--submission", str(partial)]) == 0
    captured = capsys.readouterr()
    assert "GAP 0.333333" in captured.out and "no submission row" in captured.err
    assert "not in the solution" in captured.err


def test_solution_errors(tmp_path):
    bad = write(tmp_path / "solution.csv", "id,landmarks\nq1,abc\n")
    with pytest.raises(SubmissionError, match="line 2: true landmark ids must be integers"):
        submission.read_solution(bad)


def test_mini_dataset_solution_scores_itself(tiny_root, tmp_path):
    solution = submission.read_solution(tiny_root / "test_solution.csv")
    truth = [min(t) if t else None for t in solution["truth"]]
    path = submission.write_submission(
        tmp_path / "perfect.csv", solution["id"].tolist(), truth, [1.0] * len(truth)
    )
    assert submission.validate_submission(path, sample=tiny_root / "sample_submission.csv") == []
    result = submission.score(solution, submission.read_submission(path))
    assert result["gap"] == 1.0 and result["accuracy"] == 1.0
    assert isinstance(pd.read_csv(path), pd.DataFrame)
