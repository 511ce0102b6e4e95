"""The benchmarks run (speed itself is measured by `python -m utils bench`, not asserted)."""

import json

import pytest
from PIL import Image

from utils.bench import cli as bench


def test_bench_jpegs_are_made_once_in_the_documented_range(tmp_path):
    paths = bench.make_bench_jpegs(tmp_path, 6)
    sizes = [Image.open(p).size for p in paths]
    assert all(600 <= min(s) <= 1200 and 800 <= max(s) <= 1600 for s in sizes)
    stamp = [p.stat().st_mtime_ns for p in paths]
    bench.make_bench_jpegs(tmp_path, 6)
    assert [p.stat().st_mtime_ns for p in paths] == stamp


def test_loader_benchmark_reports_all_three_and_the_ratio(tmp_path, capsys):
    args = ["loader", "--images", str(tmp_path), "--count", "8", "--size", "64"]
    assert bench.main([*args, "--workers", "0", "--batch", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rates = result["images_per_second"]
    assert set(rates) == {"naive", "project", "ceiling"} and all(v > 0 for v in rates.values())
    assert abs(result["ratio_project_vs_naive"] - rates["project"] / rates["naive"]) < 0.05


def test_train_benchmark_runs(capsys):
    assert (
        bench.main(
            [
                "train",
                "--models",
                "mobilenet_v2",
                "--size",
                "32",
                "--batch",
                "2",
                "--steps",
                "1",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    row = result["rows"][0]
    assert row["model"] == "mobilenet_v2" and row["step"]["fp32"] > 0
    assert row["ratio"]["fp32"] == 1.0 and "fp32 channels_last" in row["step"]


def test_train_benchmark_end_to_end(tiny_root, tiny_manifest):
    from utils.bench.train import bench_train

    result = bench_train(["mobilenet_v2"], 32, 4, 2, "cpu", tiny_root, tiny_manifest, workers=0)
    row = result["rows"][0]
    assert row["end_to_end"] > 0  # two timed runs, one ratio
    expected = row["end_to_end"] / row["step"][row["fastest"]]
    assert row["end_to_end_over_step"] == pytest.approx(expected, abs=0.01)


def test_retrieval_benchmark_runs(tmp_path, capsys):
    args = ["retrieval", "--sizes", "2000", "--images", str(tmp_path), "--rerank-images", "3"]
    assert bench.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    search = result["search"][0]
    assert search["faiss_exact"]["recall_at_1"] == 1.0
    assert search["numpy_brute_force"]["recall_at_1"] == 1.0
    assert result["rerank"]["verify_ms_per_pair"] > 0


def test_metrics_benchmark_runs(capsys):
    assert bench.main(["metrics", "--size", "200000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["predictions"] == 200000 and result["gap_s"] > 0
