"""`fgbg app`: the web page where creators work (Gradio).

- `jobs.py`: what a click runs, without gradio: one work directory per input pair and options
  (under $FGBG_APP_DIR, default ~/.cache/fgbg/app), the cached stages of `fgbg run`, progress to
  a callback, the built-in sample made once as the page's example;
- `page.py`: the Gradio page and its launch (gradio is imported only there, by `fgbg app`).
"""
