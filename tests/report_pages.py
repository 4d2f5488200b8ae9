"""Reading a written ``report.html`` in tests: its sections and its embedded PNG figures."""

import base64
import io
import re

from PIL import Image

SECTIONS = ("dataset", "metrics", "roc", "confusion", "learning-curves", "pathway-importance", "brain-maps",
            "reference-summary", "config")
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def section(page: str, sid: str) -> str:
    """The HTML of section ``sid`` of the page."""
    start = page.index(f'<section id="{sid}">')
    return page[start: page.index("</section>", start)]


def images(text: str) -> list[Image.Image]:
    """Every embedded image of ``text``, each checked to decode as a PNG."""
    out = []
    for b64 in IMG.findall(text):
        png = base64.b64decode(b64, validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        img = Image.open(io.BytesIO(png))
        img.load()
        out.append(img)
    return out
