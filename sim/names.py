"""Indonesian names: Faker id_ID pools plus the very common names that make
duplicate matching hard, and the real variant spellings used for injected duplicates.

All functions take an explicit `random.Random` so the simulator stays deterministic.
"""

from __future__ import annotations

import random
import re

from faker.providers.address.id_ID import Provider as _Addr
from faker.providers.person.id_ID import Provider as _Person

# Very common given names: many unrelated voters share them, which is what makes
# name-based duplicate detection imprecise in real voter lists.
COMMON_MALE = ("Muhammad", "Ahmad", "Agus", "Budi", "Joko", "Slamet", "Bambang", "Eko",
               "Dedi", "Hendra", "Rudi", "Andi", "Yusuf", "Abdul", "Arif", "Hasan",
               "Iwan", "Wahyu", "Heri", "Rizki", "Fajar", "Dian", "Sutrisno", "Suparman",
               "Supriyadi", "Sugiarto", "Darmawan", "Ujang", "Asep", "Dadang", "Nur")
COMMON_FEMALE = ("Siti", "Sri", "Nur", "Dewi", "Nurhayati", "Ratna", "Rina", "Yuliani",
                 "Wahyuni", "Fitri", "Indah", "Lestari", "Aminah", "Rohmah", "Kartini",
                 "Suryani", "Purwanti", "Nining", "Eni", "Neneng", "Dewi", "Ratna Sari",
                 "Ratnasari", "Siti Aminah", "Siti Nurhaliza", "Sri Wahyuni")
COMMON_FAMILY = ("Santoso", "Hidayat", "Saputra", "Setiawan", "Kurniawan", "Wijaya",
                 "Nugroho", "Pratama", "Susanto", "Hakim", "Rahman", "Syahputra",
                 "Hidayati", "Lestari", "Rahmawati", "Sari", "Nurjanah", "Handayani",
                 "Wulandari", "Permata", "Maulana", "Firmansyah", "Ramadhan")
# Single-word names, typical of older Javanese voters.
SINGLE_MALE = ("Sutrisno", "Suparman", "Sukirno", "Paijo", "Slamet", "Sarimin", "Kasmadi",
               "Sudarsono", "Tukiman", "Warsito", "Suyono", "Karto")
SINGLE_FEMALE = ("Sumiati", "Tukinah", "Paini", "Sainem", "Ngatini", "Suwarni", "Sulastri",
                 "Marni", "Painem", "Rukmini", "Nurhayati", "Wagiyem")
# Twins are often given paired names.
TWIN_PAIRS_MALE = (("Hasan", "Husein"), ("Fajar", "Fikri"), ("Rama", "Rizal"), ("Dimas", "Damar"))
TWIN_PAIRS_FEMALE = (("Fitri", "Fitra"), ("Nisa", "Nina"), ("Dewi", "Dina"), ("Ayu", "Ayi"))

MALE_FIRST = COMMON_MALE * 6 + tuple(_Person.first_names_male)
FEMALE_FIRST = COMMON_FEMALE * 6 + tuple(_Person.first_names_female)
MALE_LAST = COMMON_FAMILY * 3 + tuple(_Person.last_names_male)
FEMALE_LAST = COMMON_FAMILY * 3 + tuple(_Person.last_names_female)
STREETS = tuple(_Addr.streets)
HAMLET_PREFIX = ("Kp.", "Dusun", "Dsn.", "Lingk.")

MUHAMMAD = ("Muhammad", "Muhamad", "Mohamad", "Mochamad", "Mohammad", "Moh.", "M.", "Muh.")
# (modern, old) spelling pairs; Ejaan Van Ophuijsen / Soewandi spellings survive in names.
OLD_SPELLING_WORDS = (("Yusuf", "Joesoef"), ("Sukarno", "Soekarno"), ("Suharto", "Soeharto"),
                      ("Joko", "Djoko"), ("Cahyo", "Tjahjo"), ("Sutrisno", "Soetrisno"),
                      ("Suparman", "Soeparman"), ("Slamet", "Slamet"), ("Jamal", "Djamal"))
I_Y_WORDS = (("Dewi", "Dewy"), ("Hendri", "Hendry"), ("Rudi", "Rudy"), ("Dedi", "Dedy"),
             ("Heri", "Hery"), ("Andi", "Andy"), ("Yuli", "Yully"))
COMPOUNDS = (("Ratna Sari", "Ratnasari"), ("Nur Hayati", "Nurhayati"), ("Sri Wahyuni", "Sriwahyuni"),
             ("Nur Aini", "Nuraini"), ("Dwi Cahyo", "Dwicahyo"), ("Siti Aminah", "St. Aminah"))
ACADEMIC_PREFIX = ("Drs.", "Ir.", "Dr.")
ACADEMIC_SUFFIX = ("S.H.", "M.H.", "S.Pd.", "S.E.", "S.Kom.", "S.Sos.")


def male_name(rng: random.Random) -> str:
    """A plausible male voter name (1-3 words)."""
    r = rng.random()
    if r < 0.12:
        return rng.choice(SINGLE_MALE)
    first = rng.choice(MALE_FIRST)
    if r < 0.30 and first not in ("Muhammad", "Ahmad", "Abdul"):
        return f"Muhammad {first}" if rng.random() < 0.5 else f"{first} {rng.choice(MALE_FIRST)}"
    if r < 0.45:
        return f"{first} {rng.choice(MALE_FIRST)} {rng.choice(MALE_LAST)}"
    return f"{first} {rng.choice(MALE_LAST)}"


def female_name(rng: random.Random) -> str:
    """A plausible female voter name (1-3 words)."""
    r = rng.random()
    if r < 0.12:
        return rng.choice(SINGLE_FEMALE)
    first = rng.choice(FEMALE_FIRST)
    if r < 0.30:
        return first if " " in first else f"{first} {rng.choice(FEMALE_FIRST)}"
    return f"{first} {rng.choice(FEMALE_LAST)}"


def name_for(rng: random.Random, sex: str) -> str:
    """A name for sex 'L' or 'P'."""
    return male_name(rng) if sex == "L" else female_name(rng)


def with_honorific(rng: random.Random, name: str, sex: str, age: int) -> str:
    """Name as written with a Hajj honorific or academic title (legitimately, for some)."""
    if rng.random() < 0.6 and age >= 30:
        return ("H. " if sex == "L" else "Hj. ") + name
    if rng.random() < 0.5:
        pre = rng.choice(ACADEMIC_PREFIX)
        if pre == "Drs." and sex == "P":
            pre = "Dra."
        return f"{pre} {name}"
    return f"{name}, {rng.choice(ACADEMIC_SUFFIX)}"


_TITLE_RE = re.compile(r"^(H\.|Hj\.|Drs\.|Dra\.|Ir\.|Dr\.)\s+|,\s*[A-Z]\.[A-Za-z]+\.$")


def strip_titles(name: str) -> str:
    """Name without honorifics or academic titles."""
    prev = None
    while prev != name:
        prev, name = name, _TITLE_RE.sub("", name).strip()
    return name


def name_variant(rng: random.Random, name: str) -> str | None:
    """A real variant spelling of `name` (Muhammad/M., old spelling, Dewi/Dewy,
    Ratna Sari/Ratnasari, abbreviated middle name), or None if none applies."""
    options = []
    words = name.split()
    for i, w in enumerate(words):
        if w in MUHAMMAD:
            alt = rng.choice([m for m in MUHAMMAD if m != w])
            options.append(" ".join(words[:i] + [alt] + words[i + 1:]))
        for pairs in (OLD_SPELLING_WORDS, I_Y_WORDS):
            for a, b in pairs:
                if a == b:
                    continue
                if w == a:
                    options.append(" ".join(words[:i] + [b] + words[i + 1:]))
                elif w == b:
                    options.append(" ".join(words[:i] + [a] + words[i + 1:]))
    for a, b in COMPOUNDS:
        if a in name:
            options.append(name.replace(a, b, 1))
        elif b in name:
            options.append(name.replace(b, a, 1))
    # Generic old spelling of any word: u -> oe, j -> dj, c -> tj (and back).
    old = re.sub(r"(?<=[bcdfghjklmnprstwyz])u", "oe", name, count=1)
    old = old.replace("c", "tj", 1) if "c" in old and old == name else old
    if old != name:
        options.append(old)
    if "oe" in name:
        options.append(name.replace("oe", "u"))
    if len(words) >= 3:  # abbreviated middle name
        options.append(" ".join(words[:1] + [words[1][0] + "."] + words[2:]))
    options = [o for o in options if o != name]
    return rng.choice(options) if options else None


_KEYBOARD = {"a": "sq", "i": "uo", "u": "yi", "e": "wr", "o": "ip", "n": "bm", "m": "n",
             "r": "et", "s": "ad", "t": "ry", "h": "gj", "d": "sf", "y": "tu", "k": "jl"}


def typo(rng: random.Random, name: str) -> str:
    """One typing error in the name: swap, drop, double or neighbour-key substitution."""
    # Inside words only: typists rarely get a capital initial wrong.
    letters = [i for i, c in enumerate(name)
               if c.isalpha() and i > 0 and name[i - 1].isalpha() and i + 1 < len(name)]
    if len(letters) < 3:
        return name + name[-1]
    i = rng.choice(letters[:-1])
    kind = rng.randrange(4)
    if kind == 0 and name[i + 1].isalpha() and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if kind == 1:
        return name[:i] + name[i + 1:]
    if kind == 2:
        return name[:i] + name[i] + name[i:]
    c = name[i].lower()
    sub = rng.choice(_KEYBOARD.get(c, "aeiou".replace(c, "")))
    sub = sub.upper() if name[i].isupper() else sub
    return name[:i] + sub + name[i + 1:]


def address(rng: random.Random, kelurahan: bool, village_name: str) -> str:
    """A street address (kelurahan, urban) or hamlet address (desa, rural)."""
    if kelurahan or rng.random() < 0.3:
        pre = rng.choice(("Jl.", "Jl.", "Jalan", "Gg."))
        return f"{pre} {rng.choice(STREETS)} No. {rng.randint(1, 120)}"
    return f"{rng.choice(HAMLET_PREFIX)} {rng.choice(STREETS).split()[0]} {village_name}"
