"""``python -m cli``: the ``clip2point`` command without its installed script (e.g. before ``pip install -e .``)."""

from cli import app

app(prog_name="clip2point")
