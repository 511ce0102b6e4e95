"""The Gradio demo: the answer layer, the served app (gradio_client) and a real browser."""

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, copy_real_gallery, free_port, textured, warp, write_gallery
from utils.demo import app, gallery
from utils.demo.answer import Demo, UploadError, read_upload, top_confidences
from utils.demo.cli import build_demo, main, parser
from utils.demo.draw import draw_matches
from utils.retrieval.recognize import Calibration, Recognition

PHOTOS = SHARED / "real-photos" / "images"
NO_PHOTOS = "../shared/real-photos is not here (team-only material)"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def save_rgb(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` but holds one row of pixels (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (1 + 3 * width))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A demo on three textured landmarks, three views each; a new view and a stranger."""
    root = tmp_path_factory.mktemp("demo")
    folder = write_gallery(root)
    options = ["--global", "none", "--landmark-detector", "none"]  # local features of textures
    args = parser().parse_args(["--gallery", str(folder), "--cache", str(root / "cache"), *options])
    demo, _ = build_demo(args, progress=False)
    known = save_rgb(warp(textured(1), seed=9), root / "queries" / "new_view.jpg")
    stranger = save_rgb(textured(7), root / "queries" / "stranger.jpg")
    return demo, known, stranger


@pytest.fixture(scope="module")
def server(synthetic):
    """The synthetic demo served on a free local port, uploads limited to 1 MB."""
    demo = synthetic[0]
    blocks = app.build_app(demo, "Synthetic gallery.")
    _, url, share = app.launch(blocks, demo, free_port(), max_upload_mb=1, block=False, quiet=True)
    assert share is None and url.startswith("http://127.0.0.1:")
    yield url
    blocks.close()


def test_bad_uploads_get_a_message_naming_the_file_and_the_limit(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(UploadError, match=r"notes.txt: not an image"):
        read_upload(tmp_path / "notes.txt")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UploadError, match=r"empty.jpg: the file is empty"):
        read_upload(tmp_path / "empty.jpg")
    huge = png_header(tmp_path / "huge.png", 8000, 6000)  # never decoded: refused on its header
    with pytest.raises(UploadError, match=r"huge.png: 8000x6000 is 48.0 megapixels.*the 40 "):
        read_upload(huge)
    Image.new("RGB", (20, 300)).save(tmp_path / "tiny.png")
    with pytest.raises(UploadError, match=r"tiny.png: 20x300 is too small.*32 pixels"):
        read_upload(tmp_path / "tiny.png")
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 a truncated jpeg")
    with pytest.raises(UploadError, match=r"cut.jpg"):
        read_upload(tmp_path / "cut.jpg")


def test_top_three_confidences_follow_the_answer_rule():
    result = Recognition("a", "a", 0.8, {"a": 8.0, "b": 3.0, "c": 1.0, "d": 0.0}, [], 2.0)
    calibration = Calibration(0.0, 4.0, {"a": 2.0, "b": 1.0})
    # margins E / tau: a 4, b 3, c 0.25 (tau 4), d 0; confidence E / (E + tau)
    assert top_confidences(result, calibration) == [("a", 0.8), ("b", 0.75), ("c", 0.2)]


def test_drawings_are_written_once_by_content_and_in_one_piece(tmp_path):
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :30] = (255, 0, 0)  # red left half
    first = app.save_drawing(image, tmp_path)
    assert app.save_drawing(image.copy(), tmp_path) == first  # same content, same file
    back = np.asarray(Image.open(first).convert("RGB"), np.int16)
    assert back.shape == (40, 60, 3) and np.abs(back - image).mean() < 8
    assert [p.name for p in tmp_path.iterdir()] == [Path(first).name]  # no partial file left


def test_draw_matches_draws_a_line_per_inlier():
    query, other = textured(0, (200, 300)), textured(1, (400, 200))
    pairs = np.array([[10, 20, 30, 40], [250, 150, 100, 300]], np.float32)
    drawn = draw_matches(query, other, pairs, height=100)
    assert drawn.shape == (100, 150 + 50, 3) and drawn.dtype == np.uint8
    plain = draw_matches(query, other, pairs[:0], height=100)
    assert (drawn != plain).any(axis=2).sum() > 50  # the lines


def test_answer_recognises_a_new_view_and_rejects_a_stranger(synthetic):
    demo, known, stranger = synthetic
    answer = demo.answer(known)
    assert answer.landmark == "landmark_1"
    assert answer.summary.startswith("A known landmark: landmark_1")
    assert answer.top3[0][0] == "landmark_1" and answer.top3[0][1] > 0.5 and len(answer.top3) == 3
    assert [v.name for v in answer.verdicts] == ["recognizer"] and answer.verdicts[0].landmark
    assert len(answer.retrieved) == 5 and answer.retrieved[0].landmark == "landmark_1"
    assert answer.retrieved[0].inliers > 0 and Path(answer.retrieved[0].photo).is_file()
    assert answer.matches is not None and answer.matches.shape[0] == 360
    rejected = demo.answer(stranger)
    assert rejected.landmark is None and rejected.summary.startswith("Not a known landmark")
    assert rejected.to_dict()["detectors"][0]["landmark"] is False
    assert "the best landmark's evidence is" in rejected.summary


def test_a_landmark_the_gallery_lacks_is_told_apart_from_no_landmark(synthetic):
    from utils.demo.answer import Verdict, summary

    result = synthetic[0].recognizer.recognize(textured(7))
    refused = [Verdict("recognizer", False, 0.0, 4.0, True)]
    says_landmark = [*refused, Verdict("imagenet", True, 0.9, 0.432, False)]
    says_none = [*refused, Verdict("imagenet", False, 0.1, 0.432, False)]
    assert summary(None, result, refused, says_landmark).startswith("A landmark, not one I know")
    assert summary(None, result, refused, says_none).startswith("No landmark")
    assert summary(None, result, refused, refused).startswith("Not a known landmark")


def test_respond_turns_a_bad_file_into_a_message(synthetic, tmp_path):
    demo = synthetic[0]
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.txt"):  # gr.Warning outside a request
        out = app.respond(demo, str(tmp_path / "notes.txt"))
    assert "Cannot use this file" in out[1] and "notes.txt" in out[-1]["error"]
    assert app.respond(demo, None)[1].startswith("Upload a photo")


def test_a_gate_detector_decides_with_the_recognizer(synthetic):
    demo, known, _ = synthetic

    class Refuser:
        threshold = 0.5

        def score(self, images):
            return np.zeros(len(images))

    gated = Demo(demo.recognizer, demo.photos, {"refuser": Refuser()}, gate="refuser")
    answer = gated.answer(known)
    assert answer.landmark is None and "refuser scores 0, below its threshold 0.5" in answer.summary
    assert answer.summary.endswith("the recognizer alone would say landmark_1")
    shown = Demo(demo.recognizer, demo.photos, {"refuser": Refuser()})
    assert shown.answer(known).landmark == "landmark_1"  # shown, not deciding
    with pytest.raises(ValueError, match="gate 'other'"):
        Demo(demo.recognizer, demo.photos, {}, gate="other")


def test_gallery_features_are_cached_by_content(synthetic, tmp_path):
    demo = synthetic[0]
    cache = Path(demo.recognizer.shortlist.folder)
    stored = sorted(cache.glob("features/*/*.npz"))
    assert len(stored) == 9 and (cache / "index.json").is_file()
    # a copy of the gallery under other names reuses every stored feature file
    copy = tmp_path / "copy"
    shutil.copytree(demo.photos[0].parent.parent, copy)
    for path in copy.rglob("*.jpg"):
        path.rename(path.with_name("renamed_" + path.name))
    gallery.folder_recognizer(copy, cache, progress=False)
    assert sorted(cache.glob("features/*/*.npz")) == stored


def test_cli_errors(tmp_path, capsys):
    assert main(["--gallery", str(tmp_path / "none")]) == 2
    assert "gallery folder not found" in capsys.readouterr().err
    assert main(["--run", str(tmp_path)]) == 2
    assert "no trained checkpoint" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no pipeline run"):
        gallery.latest_run(tmp_path)


@pytest.mark.slow
def test_served_app_answers_refuses_big_uploads_and_bad_files(server, synthetic, tmp_path):
    import httpx
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    out = client.predict(handle_file(str(synthetic[1])), api_name="/recognize")
    assert out[-1]["landmark"] == "landmark_1" and len(out[4]) == 5
    (tmp_path / "notes.txt").write_text("not an image")
    out = client.predict(handle_file(str(tmp_path / "notes.txt")), api_name="/recognize")
    assert "not an image" in out[-1]["error"] and "Cannot use this file" in out[1]
    big = tmp_path / "big.jpg"
    big.write_bytes(np.random.default_rng(0).bytes(1_500_000))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(big)), api_name="/recognize")
    refused = httpx.post(f"{server}gradio_api/upload", files={"files": big.open("rb")})
    assert refused.status_code == 413  # the server refuses it too, not only the client


@pytest.mark.slow
def test_twenty_concurrent_calls_all_complete(server, synthetic):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    photos = [synthetic[1], synthetic[2]] * 10
    jobs = [client.submit(handle_file(str(p)), api_name="/recognize") for p in photos]
    answers = [job.result(timeout=180)[-1]["landmark"] for job in jobs]
    assert answers == ["landmark_1", None] * 10


@pytest.mark.slow
def test_browser_uploads_a_photo_and_sees_the_answer(server, synthetic, tmp_path):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium on PATH (make test installs Debian's chromium where apt can)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except sync_api.Error as err:
            pytest.skip(f"chromium cannot start here: {str(err).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server)
        page.set_input_files("input[type=file]", str(synthetic[1]))
        verdict = page.locator("#verdict")
        verdict.filter(has_text="A known landmark: landmark_1").wait_for(timeout=60_000)
        page.locator("img[src*='new_view']").first.wait_for(timeout=30_000)
        shot = tmp_path / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        text = page.inner_text("body")
        page.locator("button.gallery-item", has_text="landmark_2").click()  # an example
        verdict.filter(has_text="A known landmark: landmark_2").wait_for(timeout=60_000)
        browser.close()
    assert "Top 5 retrieved" in text and "Detectors" in text
    pixels = np.asarray(Image.open(shot).convert("L"), np.float64)
    assert pixels.shape[0] >= 1000 and pixels.std() > 20  # not a blank page


@pytest.mark.realdata
@pytest.mark.slow
def test_real_photos_through_the_served_app(tmp_path):
    if not PHOTOS.is_dir():
        pytest.skip(NO_PHOTOS)
    from gradio_client import Client, handle_file

    folder = copy_real_gallery(PHOTOS, tmp_path / "gallery")
    args = parser().parse_args(["--gallery", str(folder), "--cache", str(tmp_path / "cache")])
    demo, source = build_demo(args, progress=False)
    blocks = app.build_app(demo, source)
    _, url, _ = app.launch(blocks, demo, free_port(), block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        held_out, stranger = (
            client.predict(handle_file(str(PHOTOS / name)), api_name="/recognize")[-1]
            for name in ("sacre_coeur_07.jpg", "non_landmark_01.jpg")
        )
    finally:
        blocks.close()
    assert held_out["landmark"] == "sacre_coeur"
    assert held_out["retrieved"][0]["landmark"] == "sacre_coeur"
    # the built-in ImageNet detector is shown with a gallery: one of the two rejected cases
    assert stranger["landmark"] is None
    assert stranger["summary"].startswith(("No landmark", "A landmark, not one I know"))


@pytest.mark.notebook
@pytest.mark.slow
def test_demo_on_a_pipeline_run(tiny_run, tmp_path):
    args = parser().parse_args(["--run", str(tiny_run), "--cache", str(tmp_path / "cache")])
    demo, source = build_demo(args, progress=False)
    detectors, chosen = gallery.run_detectors(tiny_run)
    assert demo.gate == chosen and chosen in detectors and set(demo.detectors) == set(detectors)
    photo, landmark = demo.examples(1)[0]
    answer = demo.answer(photo)  # a gallery photo: itself comes first
    assert answer.retrieved[0].photo == str(photo) and answer.retrieved[0].landmark == landmark
    assert [v.name for v in answer.verdicts] == ["recognizer", *detectors]
    assert sum(v.gates for v in answer.verdicts) == 2
    assert "04_train_effnet-lite2-imagenet" in source  # the leaderboard model: every landmark
