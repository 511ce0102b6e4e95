"""The benchmarks run (speed itself is measured by `python -m utils bench`, not asserted)."""

import json

import numpy as np
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


def test_step_benchmark_times_both_steps_on_the_same_weights(capsys):
    args = ["step", "--models", "efficientnet-b2,resnet50", "--size", "32", "--batch", "2"]
    assert bench.main([*args, "--steps", "1", "--rounds", "2", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    b2, resnet = result["rows"]
    assert b2["swish_modules"] == 24 and resnet["swish_modules"] == 0
    for row in result["rows"]:
        assert len(row["baseline"]) == len(row["project"]) == len(row["ratio"]) == 2
        assert all(r > 0 for r in row["baseline"] + row["project"])
        assert set(row["optimizer_ms"]) == {"baseline", "project"}


def test_train_benchmark_end_to_end(tiny_root, tiny_manifest):
    from utils.bench.train import bench_train

    result = bench_train(["mobilenet_v2"], 32, 4, 2, "cpu", tiny_root, tiny_manifest, workers=0)
    row = result["rows"][0]
    assert row["end_to_end"] > 0  # two timed runs, one ratio
    expected = row["end_to_end"] / row["step"][row["fastest"]]
    assert row["end_to_end_over_step"] == pytest.approx(expected, abs=0.01)


def test_feed_benchmark_times_both_loaders_from_files_and_cache(tiny_root, tiny_manifest, capsys):
    args = ["feed", "--data-root", str(tiny_root), "--manifest-dir", str(tiny_manifest)]
    args += ["--size", "32", "--batch", "4", "--workers", "0", "--epochs", "1", "--rounds", "1"]
    assert bench.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["cache"] for row in result["rows"]] == [False, True]
    for row in result["rows"]:
        assert row["former"] > 0 and row["training"] > 0
        assert row["ratio"] == pytest.approx(row["training"] / row["former"], abs=0.01)


def test_retrieval_benchmark_runs(tmp_path, capsys):
    args = ["retrieval", "--sizes", "2000", "--images", str(tmp_path), "--rerank-images", "3"]
    assert bench.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    search = result["search"][0]
    assert search["faiss_exact"]["recall_at_1"] == 1.0
    assert search["numpy_brute_force"]["recall_at_1"] == 1.0
    assert result["rerank"]["verify_ms_per_pair"] > 0


def test_delf_benchmark_times_both_extractors_on_the_same_map(tmp_path, capsys):
    args = ["delf", "--images", "2", "--generated", str(tmp_path), "--max-side", "96"]
    assert bench.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 2 and result["scales"] == [0.7071, 1.0, 1.4142]
    assert result["baseline_s_per_image"] > 0 and result["project_s_per_image"] > 0
    assert result["ratio"] > 0 and result["max_difference"] < 1e-4
    assert bench.main(args) == 0
    assert "ratio" in capsys.readouterr().out


def test_metrics_benchmark_runs(capsys):
    assert bench.main(["metrics", "--size", "200000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["predictions"] == 200000 and result["gap_s"] > 0


def test_distractors_are_deterministic_photos_with_keypoints(tmp_path):
    from utils.bench.recognize import make_distractors
    from utils.data.images import load_image
    from utils.retrieval.local_features import RootSift

    paths = make_distractors(tmp_path / "a", 6, views=3, size=(320, 240), progress=False)
    again = make_distractors(tmp_path / "b", 6, views=3, size=(320, 240), progress=False)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    assert len({p.parent.name for p in paths}) == 2  # two synthetic landmarks, 3 views each
    assert all(len(RootSift().extract(load_image(p))) > 50 for p in paths)


def test_recognize_benchmark_runs(tmp_path, capsys):
    import cv2
    import pandas as pd

    from conftest import textured, warp

    photos = tmp_path / "photos"
    (photos / "images").mkdir(parents=True)
    rows = []
    for i in range(11):
        landmark = i // 3 if i < 9 else None
        image = warp(textured(landmark if landmark is not None else 50 + i, (240, 320)), seed=i)
        name = f"images/{'l' + str(landmark) if landmark is not None else 'non_landmark'}_{i}.jpg"
        cv2.imwrite(str(photos / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rows.append((name, f"l{landmark}" if landmark is not None else "non_landmark"))
    pd.DataFrame(rows, columns=["file", "label"]).to_csv(photos / "manifest.csv", index=False)
    args = ["recognize", "--photos", str(photos), "--sizes", "12,16", "--features", "200"]
    args += ["--distractors", str(tmp_path / "d"), "--cache", str(tmp_path / "c")]
    args += ["--words", "64", "--calibration-queries", "8", "--shortlist", "4", "--json"]
    assert bench.main([*args, "--global-max", "12"]) == 0
    result = json.loads(capsys.readouterr().out)
    modes = {(r["gallery"], r["mode"]) for r in result["rows"]}
    every = {(g, m) for g in (12, 16) for m in ("exhaustive", "shortlist")}
    assert modes == every | {(12, "global")}  # --global-max 12
    assert all(r["seconds_per_query"] > 0 and r["queries"] == 4 for r in result["rows"])
    pretrained = next(r for r in result["rows"] if r["mode"] == "global")
    assert pretrained["search_s"] > 0 and result["query_describe_s"] > 0
    assert result["index_build"]["photos"] == 16
    assert bench.main(["recognize", "--photos", str(tmp_path / "none")]) == 2


def test_gallery_benchmark_measures_embedding_and_projects_search(capsys):
    from utils.bench.gallery import TEST_SETS, bench_embedding, bench_gallery_search, print_gallery

    emb = bench_embedding(sides=(32, 64), batch=2, steps=1)
    assert emb["dim"] == 1280 and emb["ratio_to_smallest"][32] == 1.0
    row = bench_gallery_search(4000, dim=64, queries=50, nlist=16, nprobes=(4, 16, 99))
    exact = row["methods"]["faiss exact"]
    assert exact["recall_at_1"] == 1.0 and exact["memory_gb"] == 4000 * 64 * 4 / 1e9
    # one trained index, one row per nprobe (capped at the lists); visiting every list is exact
    ivf = {name: f for name, f in row["methods"].items() if name.startswith("faiss IVF16")}
    assert sorted(ivf) == ["faiss IVF16, nprobe 16", "faiss IVF16, nprobe 4"]
    assert ivf["faiss IVF16, nprobe 16"]["recall_at_1"] == 1.0
    assert ivf["faiss IVF16, nprobe 4"]["build_s"] == ivf["faiss IVF16, nprobe 16"]["build_s"]
    for figures in row["methods"].values():
        for name, seconds in figures["projected_s"].items():
            assert seconds == pytest.approx(TEST_SETS[name] / figures["queries_per_second"])
    print_gallery({"embedding": emb, "search": [row]})
    assert "GLDv2 test" in capsys.readouterr().out


def test_gallery_benchmark_times_the_frozen_descriptor_by_engine_and_flips(capsys):
    from utils.bench.gallery import bench_frozen, print_gallery

    frozen = bench_frozen(photos=2, photo_side=48, size=64)
    rates = frozen["photos_per_second"]
    names = ["onnx, flips", "onnx, no flips", "torch, flips", "torch, no flips"]
    assert sorted(rates) == names and min(rates.values()) > 0
    assert frozen["speed-up without flips"] == pytest.approx(
        rates["onnx, no flips"] / rates["onnx, flips"], abs=0.01
    )
    assert frozen["onnx over torch"] == pytest.approx(
        rates["onnx, flips"] / rates["torch, flips"], abs=0.01
    )
    assert frozen["largest vector difference"] < 1e-4  # the same vectors
    detector = frozen["imagenet detector"]
    assert sorted(detector["photos_per_second"]) == ["onnx", "torch"]
    assert detector["largest score difference"] < 1e-5 and detector["onnx over torch"] > 0
    no_embedding = {"dim": 1280, "images_per_second": {}}
    print_gallery({"embedding": no_embedding, "frozen": frozen, "search": []})
    out = capsys.readouterr().out
    assert "without flips" in out and "as fast as torch" in out and "ImageNet detector" in out
    with pytest.raises(ValueError, match="photos must be >= 1"):
        bench_frozen(photos=0)


def test_bench_vote_measures_both_searches(capsys):
    from utils.bench.vote import bench_vote, synthetic_gallery

    photos, labels, draw = synthetic_gallery(40, dim=64)
    assert photos.shape == (40, 64) and labels.max() == 7 and draw(3).shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(photos, axis=1), 1.0, rtol=1e-5)
    (row,) = bench_vote([60], queries=4)
    assert row["gallery"] == 60 and row["plain_ms"] > 0 and row["vote_ms"] > 0
    assert row["ratio"] > 0 and row["whitening_s"] >= 0 and row["calibration_s"] >= 0
    assert "whitening" in row["whitening"]
    assert bench.main(["vote", "--sizes", "60", "--queries", "2"]) == 0
    assert "plain search ms" in capsys.readouterr().out
