"""Indonesian name normalisation: the variants KPU staff see, and what must stay apart."""

import pytest

from models.names import name_similarity, name_tokens, normalise_name, normalise_text, phonetic_key, phonetic_token

MUHAMMAD = ["Muhammad", "Muhamad", "Mohamad", "Mohammad", "Mochamad", "Mochammad", "Moh.", "Muh.", "Mohd.",
            "Mhd.", "Muhammed", "Mohammed", "Mohamed", "Muchammad", "Muchamad", "Mukhamad", "Mukhammad",
            "Muhamat", "Moch.", "Mohamat", "Muhammat", "Mochamat", "MOCH", "MUH"]


@pytest.mark.parametrize("spelling", MUHAMMAD)
def test_muhammad_family_is_one_name(spelling):
    assert normalise_name(f"{spelling} Ridwan") == "MUHAMMAD RIDWAN"


def test_leading_m_initial_is_muhammad_but_a_lone_m_is_not():
    assert normalise_name("M. Ridwan") == "MUHAMMAD RIDWAN"
    assert normalise_name("M.") == "M"


@pytest.mark.parametrize("other", ["Mahmud", "Mamat", "Mahmudah"])
def test_similar_looking_names_are_not_muhammad(other):
    assert "MUHAMMAD" not in normalise_name(other)


@pytest.mark.parametrize("raw,canon", [
    ("Joesoef", "YUSUF"), ("Soekarno", "SUKARNO"), ("Djoko", "JOKO"), ("Tjipto", "CIPTO"),
    ("Tjahjo", "CAHYO"), ("Soewardjo", "SUWARJO"), ("Chairul", "KHAIRUL"), ("Achmad", "AHMAD"),
    ("Abdullah", "ABDULAH"), ("Dewy", "DEWI"), ("Noor", "NUR"),
])
def test_old_spelling_and_letter_folding(raw, canon):
    assert normalise_name(raw) == canon


@pytest.mark.parametrize("raw", [
    "H. Ahmad Fauzi", "Hj. Ahmad Fauzi", "Drs. Ahmad Fauzi", "Ir. Ahmad Fauzi", "Dr. Ahmad Fauzi",
    "Ahmad Fauzi, S.H.", "Ahmad Fauzi, S.H., M.H.", "Ahmad Fauzi, S.Pd.", "Prof. Dr. Ir. H. Ahmad Fauzi, M.Sc.",
    "Ahmad Fauzi SH", "ahmad  fauzi", "AHMAD FAUZI.",
])
def test_titles_and_honorifics_are_removed(raw):
    assert normalise_name(raw) == "AHMAD FAUZI"


def test_tokens_and_empty():
    assert name_tokens("Siti Nur Hasanah") == ["SITI", "NUR", "HASANAH"]
    assert name_tokens("") == [] and normalise_name(None) == ""


@pytest.mark.parametrize("a,b", [
    ("Ratna Sari", "Ratnasari"), ("Dewi", "Dewy"), ("M. Ridwan", "Muhammad Ridwan"),
    ("Siti N. Hasanah", "Siti Nur Hasanah"), ("Joesoef Hasan", "Yusuf Hasan"),
    ("Hasan Basri", "Basri Hasan"), ("Nurhajati", "Nurhayati"),
])
def test_variants_of_one_name_score_one(a, b):
    assert name_similarity(a, b) == 1.0


def test_married_name_is_close_but_not_identical():
    assert 0.9 <= name_similarity("Siti Aminah", "Siti Aminah Hasan") < 1.0


@pytest.mark.parametrize("a,b", [("Nurhayati", "Sri Wahyuni"), ("Budi Santoso", "Agus Salim"), ("Putra", "Putri")])
def test_different_names_are_not_equal(a, b):
    assert name_similarity(a, b) < 0.95


def test_typo_scores_high_but_below_one():
    assert 0.85 <= name_similarity("Maimunah", "Maimnuah") < 1.0


def test_phonetic_key_groups_spellings_for_blocking():
    assert phonetic_key("Mochamad Djoenaidi") == phonetic_key("Muhammad Junaidi")
    assert phonetic_token("ARIF") == phonetic_token("ARIP")
    assert phonetic_token("") == ""


def test_address_normalisation():
    assert normalise_text("Jl. Merdeka No. 5") == normalise_text("JALAN MERDEKA NOMOR 5")


@pytest.mark.parametrize("a,b", [("Muhammad Daliman", "Muhammaddaliman"), ("Muhammad", "Muha Mmad")])
def test_a_join_that_doubles_a_letter_is_still_the_same_name(a, b):
    assert name_similarity(a, b) == 1.0


def test_different_names_do_not_become_equal_by_squeezing_letters():
    assert name_similarity("Ana", "Anna Sari") < 1.0 and name_similarity("Adi", "Addi") == 1.0
