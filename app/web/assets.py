"""Static assets of the dashboard, served from memory with a content hash.

Each asset's URL carries the first 12 hex digits of its SHA-256 (``?v=…``), so browsers
may cache it for a year (``immutable``); a new release changes the hash and the URL.
Bodies are gzipped once, on first request, for clients that accept it: Plotly.js is
4.8 MB as shipped and ~1.4 MB gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass
class Asset:
    """One file's bytes, their hash, and their gzip encoding once asked for."""

    name: str
    body: bytes
    media_type: str
    digest: str = field(init=False)
    _gzipped: bytes | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256(self.body).hexdigest()[:12]

    @property
    def url(self) -> str:
        """Where the page links it, with the hash that lets browsers cache it for good."""
        return f"/assets/{self.name}?v={self.digest}"

    def gzipped(self) -> bytes:
        """The gzip encoding (level 6), computed on first use and kept."""
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
            return self._gzipped


def plotly_js() -> bytes:
    """plotly.min.js as the ``plotly`` Python package ships it (no CDN, no Node)."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


def load_assets() -> dict[str, Asset]:
    """The dashboard's own files and Plotly.js, by name."""
    assets = {"plotly.min.js": Asset("plotly.min.js", plotly_js(), MEDIA_TYPES[".js"])}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in MEDIA_TYPES:
            assets[path.name] = Asset(path.name, path.read_bytes(), MEDIA_TYPES[path.suffix])
    return assets
