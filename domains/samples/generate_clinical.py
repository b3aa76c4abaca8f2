#!/usr/bin/env python
"""Write the embedded-default sample data of the clinical domain.

    python domains/samples/generate_clinical.py [--out DIR]   # default: next to this script

Everything is synthetic and deterministic (one seeded random stream per output file): notes are filled
from templates and word lists written here, with MIMIC-style de-identification tags ([**First Name**],
[**2101-10-20**], [**Hospital1 18**], …) so the tokenizer's placeholder rule is exercised. Nothing is
copied from MTSamples, MTS-Dialog or MIMIC. The files mimic the real formats:
- corpus.txt: one note per line (unlabelled);
- mtsamples_specialty/ and mtsamples_multilabel/ {train,dev,test}.csv: the MTSamples layout
  (note_id,dup_group,medical_specialty,sample_name,description,keywords,transcription), one row per
  (note, listed specialty): a note is cross-listed under an umbrella category ("Surgery", "Consult - History
  and Phy.", …) or a second specialty now and then, rows of one note sharing its dup_group;
- mts_dialog_section/{train,dev,test}.csv: the MTS-Dialog layout (ID,section_header,section_text,dialogue).
This script is not part of the `zoo` package; it only writes data files.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
from pathlib import Path

SEED = 20261130
SPECIALTIES = {
    "Cardiovascular / Pulmonary": (
        "chest pain",
        "shortness of breath",
        "atrial fibrillation",
        "echocardiogram",
        "coronary artery disease",
        "ejection fraction",
        "wheezing",
        "COPD exacerbation",
        "troponin",
        "cardiac catheterization",
    ),
    "Orthopedic": (
        "knee pain",
        "rotator cuff tear",
        "fracture of the distal radius",
        "range of motion",
        "arthroscopy",
        "lumbar strain",
        "cast",
        "x-ray of the hip",
        "meniscus",
        "total knee arthroplasty",
    ),
    "Neurology": (
        "headache",
        "seizure",
        "numbness",
        "MRI of the brain",
        "EEG",
        "tremor",
        "multiple sclerosis",
        "gait instability",
        "cranial nerves",
        "migraine",
    ),
    "Gastroenterology": (
        "abdominal pain",
        "colonoscopy",
        "GERD",
        "rectal bleeding",
        "EGD",
        "polyp",
        "diarrhea",
        "hepatitis",
        "dysphagia",
        "biopsy of the antrum",
    ),
    "Urology": (
        "hematuria",
        "cystoscopy",
        "kidney stone",
        "PSA",
        "urinary retention",
        "prostate",
        "ureteral stent",
        "dysuria",
        "bladder",
        "lithotripsy",
    ),
    "Dermatology": (
        "rash",
        "pruritus",
        "lesion",
        "excision",
        "eczema",
        "psoriasis",
        "punch biopsy",
        "erythema",
        "nevus",
        "topical steroid",
    ),
}
UMBRELLAS = ("Surgery", "Consult - History and Phy.", "Discharge Summary", "SOAP / Chart / Progress Notes")
GENERIC = (
    "The patient is a {age}-year-old {sex} who presents with {a}.",
    "History of {a} and {b} for the past {n} weeks.",
    "Seen by Dr. [**Last Name (NamePattern1) {id}**] at [**Hospital1 {id}**] on [**{date}**].",
    "Plan: follow up with [**First Name8 (NamePattern2) {id}**] regarding {b}.",
    "Vital signs stable. Denies fever or chills.",
    "Assessment: {a}, rule out {b}.",
    "Medications reviewed; allergies include penicillin.",
    "Family history significant for {c}.",
    "Call [**Telephone/Fax (1) {id}**] with questions; MRN [**Medical Record Number {id}**].",
    "Discharged home in good condition on [**{date}**].",
    "Physical examination revealed {c} without distress.",
)
SECTIONS = {
    "GENHX": (
        "What brings you in today?",
        "I have had {a} for about {n} days.",
        "The patient presents with {a} for {n} days.",
    ),
    "MEDICATIONS": (
        "What medicines are you taking right now?",
        "I take {drug} every morning and {drug2} at night.",
        "{drug} daily, {drug2} nightly.",
    ),
    "ALLERGY": (
        "Do you have any allergies to medications?",
        "Yes, {drug} gives me a rash.",
        "Allergic to {drug} (rash).",
    ),
    "FAM/SOCHX": (
        "Does anyone in your family have health problems? Do you smoke?",
        "My mother had {c}. I quit smoking {n} years ago.",
        "Mother with {c}. Former smoker, quit {n} years ago.",
    ),
    "PASTSURGICAL": (
        "Have you had any surgeries before?",
        "I had my appendix out and a {surgery} {n} years ago.",
        "Appendectomy; {surgery} {n} years ago.",
    ),
    "ROS": (
        "Any fever, chills, nausea or trouble breathing?",
        "No fever. Some {a} but no nausea.",
        "Negative except for {a}.",
    ),
}
DRUGS = ("lisinopril", "metformin", "aspirin", "atorvastatin", "omeprazole", "sertraline", "albuterol")
SURGERIES = ("cholecystectomy", "knee replacement", "hernia repair", "C-section", "tonsillectomy")
CONDITIONS = ("diabetes", "hypertension", "breast cancer", "stroke", "asthma", "heart disease")


def _date(rng: random.Random) -> str:
    return rng.choice(
        [
            f"21{rng.randint(0, 99):02d}-{rng.randint(1, 12)}-{rng.randint(1, 28)}",
            f"{rng.randint(1, 12)}-{rng.randint(1, 28)}",
            f"Month (only) {rng.randint(1, 999)}",
        ]
    )


def note(rng: random.Random, specialty: str) -> str:
    terms = SPECIALTIES[specialty]
    others = [t for s, ts in SPECIALTIES.items() if s != specialty for t in ts]
    sentences = rng.sample(GENERIC, rng.randint(4, 7))
    out = []
    for s in sentences:
        fill = {
            "age": rng.randint(18, 90),
            "sex": rng.choice(["male", "female"]),
            "a": rng.choice(terms),
            "b": rng.choice(terms if rng.random() < 0.7 else others),
            "c": rng.choice(others if rng.random() < 0.6 else terms),
            "n": rng.randint(1, 12),
            "id": rng.randint(1, 999),
            "date": _date(rng),
        }
        out.append(s.format(**fill))
    return " ".join(out)


def specialty_rows(rng: random.Random, n_notes: int, first_id: int) -> list[dict[str, str]]:
    rows = []
    names = list(SPECIALTIES)
    for i in range(n_notes):
        main = names[i % len(names)]
        text = note(rng, main)
        labels = [main]
        r = rng.random()
        if r < 0.5:
            labels.append(rng.choice(UMBRELLAS))
        elif r < 0.6:
            labels.append(rng.choice([s for s in names if s != main]))
        group = hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:12]
        for label in labels:
            rows.append(
                {
                    "note_id": str(first_id + len(rows)),
                    "dup_group": group,
                    "medical_specialty": label,
                    "sample_name": f"{main.split()[0]} note {i}",
                    "description": text.split(".")[0] + ".",
                    "keywords": ", ".join(sorted({main.lower(), label.lower()})),
                    "transcription": text,
                }
            )
    rng.shuffle(rows)
    return rows


def dialog_rows(rng: random.Random, n: int, first_id: int) -> list[dict[str, str]]:
    rows = []
    headers = list(SECTIONS)
    for i in range(n):
        header = headers[i % len(headers)]
        ask, answer, text = SECTIONS[header]
        terms = [t for ts in SPECIALTIES.values() for t in ts]
        fill = {
            "a": rng.choice(terms),
            "c": rng.choice(CONDITIONS),
            "n": rng.randint(1, 20),
            "drug": rng.choice(DRUGS),
            "drug2": rng.choice(DRUGS),
            "surgery": rng.choice(SURGERIES),
        }
        filler = rng.choice(
            ["Doctor: Good morning.\nPatient: Morning, doctor.\n", "", "Doctor: Hello again.\n"]
        )
        dialogue = f"{filler}Doctor: {ask.format(**fill)}\nPatient: {answer.format(**fill)}"
        rows.append(
            {
                "ID": str(first_id + i),
                "section_header": header,
                "section_text": text.format(**fill),
                "dialogue": dialogue,
            }
        )
    rng.shuffle(rows)
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with path.open(newline="", encoding="utf-8") as f:  # re-read: it must parse to what was written
        assert list(csv.DictReader(f)) == rows, path


def main(out: Path) -> None:
    rng = random.Random(SEED)
    names = list(SPECIALTIES)
    corpus = [note(rng, names[i % len(names)]) for i in range(1800)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    sizes = {"train": 240, "dev": 60, "test": 60}
    for split, n in sizes.items():
        rows = specialty_rows(random.Random(f"{SEED}-notes-{split}"), n, 1 + 10_000 * len(split))
        for task in ("mtsamples_specialty", "mtsamples_multilabel"):
            _write_csv(out / task / f"{split}.csv", rows)
        _write_csv(
            out / "mts_dialog_section" / f"{split}.csv",
            dialog_rows(
                random.Random(f"{SEED}-dialog-{split}"), {"train": 180, "dev": 48, "test": 48}[split], 0
            ),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "clinical")
    main(parser.parse_args().out)
