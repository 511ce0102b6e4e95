"""The Gradio demo (report section 11): upload a photo, get landmark-or-not, its name, top 5.

- `utils.demo.answer`: the answer to one uploaded file, pure Python (no server): input checks,
  each detector's verdict, the recognised landmark with its top-3 confidences, the top 5;
- `utils.demo.gallery`: what the demo answers with: a gallery folder (local features only)
  or the artefacts of a pipeline run (checkpoint, detectors, a gallery from its data);
- `utils.demo.draw`: the inlier matches between the query and a gallery photo, as an image;
- `utils.demo.app`: the `gradio.Blocks` page and its launch (localhost, no share link);
- `utils.demo.cli`: ``python -m utils demo``.
"""
