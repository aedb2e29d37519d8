"""Indonesian personal-name normalisation for duplicate matching (a helper, not a detector).

Voter lists spell one person many ways: the Muhammad family (Muhamad, Mohamad,
Mochamad, Moh., M., ...), the pre-1972 spelling (Joesoef for Yusuf, Djoko for
Joko, Tjipto for Cipto), honorifics (H., Hj.) and academic titles (Drs., Ir.,
S.H., M.H., S.Pd., Dr.), y/i at the end of a word (Dewy/Dewi), doubled letters
and names written together or apart (Ratna Sari / Ratnasari).

:func:`normalise_name` gives a readable canonical form, :func:`name_tokens` its
tokens, :func:`phonetic_token` a coarse code for blocking and
:func:`name_similarity` a score in [0, 1] built on ``rapidfuzz``.

Examples
--------
>>> normalise_name("H. Moch. Joesoef, S.H., M.H.")
'MUHAMMAD YUSUF'
>>> normalise_name("Drs. Djoko Tjahjono")
'JOKO CAHYONO'
>>> normalise_name("Dewy Ratnasari") == normalise_name("DEWI RATNA SARI").replace("RATNA SARI", "RATNASARI")
True
>>> name_similarity("Ratna Sari", "Ratnasari")
1.0
>>> name_similarity("Muhammad Daliman", "Muhammaddaliman")
1.0
>>> name_similarity("M. Ridwan", "Muhammad Ridwan")
1.0
>>> name_similarity("Siti N. Hasanah", "Siti Nur Hasanah")
1.0
>>> name_similarity("Nurhayati", "Sri Wahyuni") < 0.7
True
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler

__all__ = [
    "normalise_name",
    "name_tokens",
    "phonetic_token",
    "phonetic_key",
    "name_similarity",
    "normalise_text",
]

# Titles written before a name: religious honorifics and academic/noble prefixes.
PREFIX_TITLES = frozenset(
    {"H", "HJ", "HAJI", "HAJAH", "HAJJAH", "DRS", "DRA", "IR", "DR", "PROF", "KH", "USTADZ",
     "UST", "DRG", "DRH", "KOL", "LETKOL", "MAYOR", "KAPT", "BRIPKA", "AIPTU", "SERDA"}
)
# Academic degrees written after a name (usually after a comma).
SUFFIX_TITLES = frozenset(
    {"SH", "MH", "SPD", "SPDI", "SE", "ST", "MM", "MSI", "MPD", "SKOM", "SAG", "SSOS", "SIP",
     "SKM", "AMD", "AMDKEP", "AMK", "MKES", "SHI", "SSI", "SKEP", "SFARM", "MT", "MKOM", "PHD",
     "MA", "MSC", "BSC", "SPOG", "SPA", "SPB", "SPPD", "MAG", "MAP", "SP", "STP", "SHUT", "SSN",
     "SPSI", "SKED", "MBA", "MPH", "SPDSD", "SS", "SSTP", "MSTAT", "DR", "IR", "DRS", "H", "HJ"}
)
# Words that join rather than name (Ahmad bin Salim, Siti binti Umar).
CONNECTORS = frozenset({"BIN", "BINTI", "BT", "BN"})

# The Muhammad family: M, MUH, MOH, MOCH, MUHD, MHD and the full spellings.
_MUHAMMAD_ABBREV = frozenset({"M", "MU", "MUH", "MUHD", "MOH", "MOHD", "MOCH", "MOCHD", "MHD", "MUCH", "MD", "MOHAMMAD"})
# First vowel U/O only: Mahmud and Mamat are other names.
_MUHAMMAD_RE = re.compile(r"^M[UO](CH|KH|H)?A?M{1,2}[AEUI]?(D|T|DH|TH)?$")

# Whole-token spellings that the letter rules do not reach.
_TOKEN_SYNONYMS = {
    "ABD": "ABDUL", "ABDOEL": "ABDUL", "ACHMAD": "AHMAD", "AHMAT": "AHMAD", "ACHMAT": "AHMAD",
    "NOOR": "NUR", "NOER": "NUR", "NURUL": "NURUL", "SITTI": "SITI",
    "MOEHAMMAD": "MUHAMMAD",
}

_OLD_SPELLING = re.compile(r"OE|DJ|TJ|SJ|NJ")
_NON_LETTER = re.compile(r"[^A-Z.,' ]+")


def _ascii_upper(text: str) -> str:
    if text.isascii():
        return text.upper()  # NFKD leaves ASCII as it is, with nothing to strip
    # Strip accents (é -> E) so that typed and copied forms compare equal.
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).upper()


def _modernise(token: str) -> str:
    """Old (van Ophuijsen / Soewandi) spelling to EYD, then letter-level folding."""
    t = token
    if _OLD_SPELLING.search(t):
        # In the old spelling a bare J is today's Y (Joesoef = Yusuf, Tjahjo = Cahyo).
        t = re.sub(r"(?<![DTSN])J", "Y", t)
        t = t.replace("OE", "U").replace("DJ", "J").replace("TJ", "C").replace("SJ", "SY").replace("NJ", "NY")
    # Dutch 'ch': at the start before A/O/U it is today's 'kh' (Chairul =
    # Khairul), inside a word mostly 'h' (Rachmat = Rahmat, Achmad = Ahmad);
    # before I/E and in Chandra it is a modern 'c'.
    if len(t) > 2:
        head = t[:2]
        if head == "CH" and t[2] in "AOU" and not t.startswith("CHAND"):
            t = "KH" + t[2:]
        t = t[:2] + t[2:].replace("CH", "H")
    t = re.sub(r"(.)\1+", r"\1", t)  # doubled letters (Abdullah / Abdulah)
    if len(t) > 2 and t.endswith("Y") and t[-2] not in "AEIOU":
        t = t[:-1] + "I"  # Dewy -> Dewi (but not Nanny -> keep vowel+Y rules simple)
    elif len(t) > 2 and t.endswith("IE"):
        t = t[:-2] + "I"  # Sutrisnie -> Sutrisni
    return t


@lru_cache(maxsize=200_000)
def normalise_name(name: str | None) -> str:
    """Canonical form of a personal name.

    Uppercase ASCII, punctuation removed, honorifics and academic titles
    removed, the Muhammad family written ``MUHAMMAD``, old spelling
    modernised, doubled letters collapsed, final ``Y`` after a consonant
    written ``I``.

    Parameters
    ----------
    name
        The name as typed. ``None`` or an empty string gives ``""``.

    Examples
    --------
    >>> [normalise_name(n) for n in ["Muhamad", "Mohamad", "Mochamad", "Moh.", "M. Arif"]]
    ['MUHAMMAD', 'MUHAMMAD', 'MUHAMMAD', 'MUHAMMAD', 'MUHAMMAD ARIF']
    >>> normalise_name("Hj. Siti Aminah, S.Pd.")
    'SITI AMINAH'
    >>> normalise_name("Ir. Soekarno")
    'SUKARNO'
    >>> normalise_name("Ahmad bin Salim")
    'AHMAD SALIM'
    >>> normalise_name("  ")
    ''
    """
    if not name:
        return ""
    text = _ascii_upper(str(name))
    text = _NON_LETTER.sub(" ", text).replace("'", "")
    # Everything after the first comma that is a degree list goes; a comma can
    # also just separate names, so only title-looking chunks are dropped.
    chunks = [c for c in re.split(r"[ ,]+", text.replace(",", " , ")) if c]
    raw: list[tuple[str, bool]] = []  # (letters, written with a dot)
    after_comma = False
    for chunk in chunks:
        if chunk == ",":
            after_comma = True
            continue
        compact = chunk.replace(".", "")
        if not compact:
            continue
        if after_comma and compact in SUFFIX_TITLES:
            continue
        # "S.H." and "M.Pd" split on dots still form one degree token.
        parts = [p for p in chunk.split(".") if p]
        if len(parts) > 1 and compact in SUFFIX_TITLES and raw:
            continue
        if len(parts) > 1 and all(len(p) <= 2 for p in parts) and compact not in SUFFIX_TITLES and len(compact) <= 3:
            # "M.A.R." style initials: keep each initial.
            raw.extend((p, True) for p in parts)
            continue
        raw.append((compact, "." in chunk))
    # Leading honorifics (H., Hj., Drs., ...); "H" alone at the start is Haji.
    while len(raw) > 1 and raw[0][0] in PREFIX_TITLES:
        raw.pop(0)
    # Trailing degrees written without a comma ("Budi Santoso SH").
    while len(raw) > 1 and raw[-1][0] in SUFFIX_TITLES and raw[-1][0] not in {"H", "M"}:
        raw.pop()
    out: list[str] = []
    for i, (tok, _dotted) in enumerate(raw):
        if tok in CONNECTORS and 0 < i < len(raw) - 1:
            continue
        if tok == "ST" and i == 0 and len(raw) > 1:
            out.append("SITI")  # "St. Aminah": Siti, not Sarjana Teknik
            continue
        if tok in _MUHAMMAD_ABBREV and (len(tok) > 1 or (i == 0 and len(raw) > 1)):
            out.append("MUHAMMAD")
            continue
        if _MUHAMMAD_RE.match(tok) and len(tok) >= 6:
            out.append("MUHAMMAD")
            continue
        tok = _TOKEN_SYNONYMS.get(tok, tok)
        mod = _modernise(tok)
        mod = _TOKEN_SYNONYMS.get(mod, mod)
        if _MUHAMMAD_RE.match(mod) and len(mod) >= 6:
            mod = "MUHAMMAD"
        out.append(mod)
    return " ".join(out)


def name_tokens(name: str | None) -> list[str]:
    """Tokens of :func:`normalise_name`.

    Examples
    --------
    >>> name_tokens("Drs. H. Achmad Djunaedi, M.Si.")
    ['AHMAD', 'JUNAEDI']
    """
    n = normalise_name(name)
    return n.split() if n else []


@lru_cache(maxsize=200_000)
def phonetic_token(token: str) -> str:
    """A coarse sound code of one normalised token, for blocking.

    Keeps the first letter (with J/Y, F/P/V, Z/J folded), then the consonant
    skeleton without H, vowels and repeats. Tolerant of vowel typos, the old
    J = Y spelling, Arif/Arip and Rahmat/Ramat; not meant to be read.

    Examples
    --------
    >>> phonetic_token("YUSUF") == phonetic_token("JUSUF")
    True
    >>> phonetic_token("ARIF") == phonetic_token("ARIP")
    True
    >>> phonetic_token("DEWI"), phonetic_token("RATNASARI")
    ('DW', 'RTNSR')
    """
    t = token.upper()
    if not t:
        return ""
    if t.startswith(("KH", "CH", "SY", "DH", "TH")):
        t = t[0] + t[2:]
    t = t.replace("KH", "H") if len(t) > 2 and t[0] != "K" else t
    fold = str.maketrans({"J": "Y", "F": "P", "V": "P", "Z": "Y", "Q": "K", "X": "K", "C": "K"})
    head, tail = t[0].translate(fold), t[1:].translate(fold)
    # Inside a word the second letter of KH/SY/DH/TH adds nothing.
    tail = re.sub(r"[AEIOUHY]", "", tail.replace("KH", "H").replace("SY", "S"))
    code = head + tail
    return re.sub(r"(.)\1+", r"\1", code)


def phonetic_key(name: str | None) -> str:
    """Phonetic codes of all tokens, space separated.

    Examples
    --------
    >>> phonetic_key("Mochamad Djoenaidi") == phonetic_key("Muhammad Junaidi")
    True
    """
    return " ".join(phonetic_token(t) for t in name_tokens(name))


_FOLD = str.maketrans({"J": "Y", "V": "F", "Q": "K"})


def _fold(joined: str) -> str:
    """Spelling-level folding for equality only (Nurhajati = Nurhayati, Kasijah = Kasiyah)."""
    return joined.replace("PH", "F").replace("TH", "T").replace("DH", "D").translate(_FOLD)


_DOUBLED = re.compile(r"(.)\1+")


def _squeeze(joined: str) -> str:
    """Doubled letters written once: a join can create them (MUHAMMAD + DALIMAN)."""
    # Most names have none; sub with a template costs ten times the search.
    return _DOUBLED.sub(r"\1", joined) if _DOUBLED.search(joined) else joined


@lru_cache(maxsize=16_384)
def _spelled(joined: str) -> str:
    """``_squeeze(_fold(joined))``, cached: one record meets the same names in several blocks,
    and its own name in every pair."""
    return _squeeze(_fold(joined))


def _expand_initials(a: list[str], b: list[str]) -> list[str]:
    """Replace one-letter tokens in ``a`` by the token of ``b`` they abbreviate."""
    if not any(len(t) == 1 for t in a):
        return a
    used: set[int] = set()
    out = []
    for tok in a:
        if len(tok) == 1:
            for j, other in enumerate(b):
                if j not in used and len(other) > 1 and other[0] == tok and other not in a:
                    out.append(other)
                    used.add(j)
                    break
            else:
                out.append(tok)
        else:
            out.append(tok)
    return out


def name_similarity(a: str | list[str] | None, b: str | list[str] | None) -> float:
    """Similarity of two names in [0, 1], after normalisation.

    The best of: token-sort similarity (word order), the names written
    together (Ratna Sari / Ratnasari) and Jaro-Winkler of the joined form
    (typos); with initials expanded against the other
    name (Siti N. Hasanah / Siti Nur Hasanah). A name that is the other name
    plus more words (a married name, an added middle name) scores through
    token-set similarity, discounted slightly so that exact equality ranks
    higher.

    Parameters
    ----------
    a, b
        Raw names, or token lists from :func:`name_tokens`.

    Examples
    --------
    >>> name_similarity("Dewi", "Dewy"), name_similarity("Nurhajati", "Nurhayati")
    (1.0, 1.0)
    >>> round(name_similarity("Siti Aminah", "Siti Aminah Hasan"), 2)
    0.95
    >>> name_similarity("", "Budi")
    0.0
    """
    ta = name_tokens(a) if isinstance(a, str) or a is None else list(a)
    tb = name_tokens(b) if isinstance(b, str) or b is None else list(b)
    if not ta or not tb:
        return 0.0
    ta, tb = _expand_initials(ta, tb), _expand_initials(tb, ta)
    sa, sb = " ".join(ta), " ".join(tb)
    if sa == sb:
        return 1.0
    ja, jb = "".join(ta), "".join(tb)
    if ja == jb or _spelled(ja) == _spelled(jb):
        # Same letters, or the same up to J/Y, F/V, K/Q spellings and doubled
        # letters across a join (Muhammad Daliman / Muhammaddaliman).
        return 1.0
    best = max(
        fuzz.token_sort_ratio(sa, sb) / 100.0,
        fuzz.ratio(ja, jb) / 100.0,
        JaroWinkler.similarity(ja, jb) * 0.92,  # JW flatters shared prefixes: damp it
    )
    # Subset names (married / added middle name): strong but not exact.
    if set(ta) <= set(tb) or set(tb) <= set(ta):
        best = max(best, 0.95)
    return round(min(best, 1.0), 4)


def normalise_text(text: str | None) -> str:
    """Uppercase ASCII words of a place or address, punctuation removed.

    Common address abbreviations are expanded so that JL. and JALAN agree.

    Examples
    --------
    >>> normalise_text("Jl. Merdeka No. 5, RT 01/RW 02")
    'JALAN MERDEKA NOMOR 5 RT 01 RW 02'
    >>> normalise_text(None)
    ''
    """
    if not text:
        return ""
    return _normalise_text(str(text))


@lru_cache(maxsize=65_536)
def _normalise_text(text: str) -> str:
    # Places and address parts repeat (one record asks twice): cache the work.
    t = _ascii_upper(text)
    t = re.sub(r"[^A-Z0-9]+", " ", t)
    words = [_ADDRESS_ABBREV.get(w, w) for w in t.split()]
    return " ".join(words)


_ADDRESS_ABBREV = {
    "JL": "JALAN", "JLN": "JALAN", "GG": "GANG", "NO": "NOMOR", "KP": "KAMPUNG", "KAMP": "KAMPUNG",
    "DS": "DESA", "DSN": "DUSUN", "PERUM": "PERUMAHAN", "KEL": "KELURAHAN", "KEC": "KECAMATAN",
    "KAB": "KABUPATEN", "BLK": "BLOK", "KOMP": "KOMPLEK", "KOMPL": "KOMPLEK",
}
