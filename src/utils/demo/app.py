"""The demo's page: upload a photo, see each detector's verdict, the landmark and the top 5.

`build_app` lays out a `gradio.Blocks` around a `utils.demo.answer.Demo`; `launch` serves it
on localhost only: no share link, analytics off, fonts from the system (the page loads nothing
from the internet), uploads above ``max_upload_mb`` refused, and a queue running at most
``concurrency`` answers at once with room for ``queue_size`` waiting requests. The answer's
endpoint is ``/recognize``: ``gradio_client.Client(url).predict(handle_file(path),
api_name="/recognize")`` returns the page's outputs, the last one `Answer.to_dict`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from utils.data.images import encode_jpeg, write_atomic
from utils.demo.answer import Demo, UploadError

TITLE = "Landmark recognition"
HEADERS = ["detector", "verdict", "score", "threshold", "decides"]
DETECTORS = (
    "Detectors: a landmark when score >= threshold (the recognizer's score is the best "
    "landmark's inlier evidence, its threshold the calibrated one); 'decides': its verdict counts"
)


def _gradio():
    """Gradio, imported with its analytics off (it reads the setting when imported)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError as err:
        raise ImportError(
            "the demo needs gradio, an extra: pip install 'landmark-recognition[demo]' "
            "(or make install)"
        ) from err
    return gradio


def save_drawing(image: np.ndarray, folder: Path, name: str = "matches") -> str:
    """Write an RGB drawing as ``folder/<name>-<content hash>.jpg``, atomically; its path.

    Gradio writes a numpy output into its cache in place, under a name made from its content,
    so two identical answers at once (two people clicking the same example) could send one of
    them a half-written file. A file path is copied into that cache under a temporary name and
    renamed, so the page returns paths written the same way.
    """
    data = encode_jpeg(image, 90)
    path = Path(folder) / f"{name}-{hashlib.sha256(data).hexdigest()[:20]}.jpg"
    if not path.exists():
        write_atomic(path, data)
    return str(path)


def respond(demo: Demo, path: str | None) -> tuple:
    """The page's outputs for one upload: query, summary, top 3, detectors, top 5, matches, JSON.

    A file the demo cannot use gives its message in the page (and a warning toast), never an
    exception.
    """
    gr = _gradio()
    if not path:
        return None, "Upload a photo (or click an example).", None, [], [], None, {}
    try:
        answer = demo.answer(path)
    except UploadError as err:
        gr.Warning(str(err))
        return None, f"**Cannot use this file.** {err}", None, [], [], None, {"error": str(err)}
    rows = [
        [v.name, "landmark" if v.landmark else "not a landmark", v.score, v.threshold, v.gates]
        for v in answer.verdicts
    ]
    photos = [
        (r.photo, f"{k}. {r.landmark}: similarity {r.similarity:.2f}, {r.inliers} inliers")
        for k, r in enumerate(answer.retrieved, 1)
    ]
    text = f"**{answer.summary}**  \n{answer.file}, answered in {answer.seconds:.2f} s"
    matches = (
        save_drawing(answer.matches, demo.drawing_folder()) if answer.matches is not None else None
    )
    return path, text, dict(answer.top3) or None, rows, photos, matches, answer.to_dict()


def build_app(demo: Demo, source: str = "", examples: int = 6):
    """The `gradio.Blocks` page of the demo; ``source`` says what it answers with."""
    gr = _gradio()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as blocks:
        gr.Markdown(
            f"# {TITLE}\nUpload a photo: is it a landmark, which one, and the five most "
            f"similar photos of the gallery. {source}"
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Photo", file_count="single", type="filepath")
                query = gr.Image(label="Your photo", interactive=False, height=280)
                shown = demo.examples(examples)
                if shown:
                    gr.Examples(
                        [[str(photo)] for photo, _ in shown],
                        inputs=[upload],
                        label="Example photos (from the gallery)",
                        example_labels=[label for _, label in shown],
                    )
            with gr.Column(scale=2):
                verdict = gr.Markdown("Upload a photo (or click an example).", elem_id="verdict")
                top3 = gr.Label(label="Landmark: top 3 and confidence", num_top_classes=3)
                detectors = gr.Dataframe(headers=HEADERS, label=DETECTORS, interactive=False)
                retrieved = gr.Gallery(label="Top 5 retrieved", columns=5, height=240)
                matches = gr.Image(
                    label="Inlier matches with the best photo", format="jpeg", interactive=False
                )
                with gr.Accordion("Answer (JSON, as /recognize returns it)", open=False):
                    details = gr.JSON(label="Answer")
        upload.change(
            lambda path: respond(demo, path),
            inputs=[upload],
            outputs=[query, verdict, top3, detectors, retrieved, matches, details],
            api_name="recognize",
        )
    return blocks


def launch(
    blocks,
    demo: Demo,
    port: int | None = None,
    host: str = "127.0.0.1",
    max_upload_mb: float = 20,
    concurrency: int = 2,
    queue_size: int = 64,
    block: bool = True,
    quiet: bool = False,
):
    """Serve the page (module docstring); returns gradio's ``(app, local_url, share_url)``."""
    gr = _gradio()
    blocks.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    roots = [os.path.commonpath([str(p.parent) for p in demo.photos])]  # served photos
    roots.append(str(demo.drawing_folder()))  # and the drawn matches (`save_drawing`)
    return blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=int(max_upload_mb * 1e6),
        allowed_paths=roots,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        theme=gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        ),
    )
