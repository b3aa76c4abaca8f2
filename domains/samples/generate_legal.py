#!/usr/bin/env python
"""Write the embedded-default sample data of the legal domain.

    python domains/samples/generate_legal.py [--out DIR]   # default: next to this script

Everything is synthetic and deterministic (one seeded random stream per output file): sentences come from
templates and word lists written here; nothing is copied from CLAUDETTE, the Caselaw Access Project,
CaseHOLD or any other corpus. The files mimic the real formats:
- corpus.jsonl: one document per line, `{"kind": "opinion"|"tos", "text": ...}`: appellate opinions and
  Terms-of-Service documents of 300-1,500 words (long: pretraining cuts them into windows);
- unfair_tos/{train,dev,test}.jsonl and unfair_tos_binary/ (the same files): the CLAUDETTE layout of
  ../shared/data/legal/claudette_tos, `{"doc", "line", "text", "tags", "labels", "unfair"}`, with the 8
  LexGLUE unfair-clause types; about a quarter of the sentences are unfair (fair ones include clauses of
  the same topics worded fairly, so the topic alone does not give the label away);
- casehold/{train,dev,test}.csv: the public CaseHOLD CSV layout (`,citing_prompt,holding_0..4,label`, an
  unnamed index column first) with the holding masked as `(<HOLDING>)` in the prompt.
This script is not part of the `zoo` package; it only writes data files.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

SEED = 20261130
COMPANIES = ["Lumora", "Quillby", "Harbex", "Nuvola", "Strivo", "Peakstone", "Verdant", "Oxbridge", "Talvi"]
SERVICES = ["the Service", "the Platform", "the App", "our Services", "the Website"]
PARTY = ["you", "the user", "the customer", "the member"]
COURTS = ["district court", "trial court", "workers' compensation judge", "magistrate", "hearing officer"]
PEOPLE = ["Herrera", "Baca", "Lucero", "Montoya", "Archuleta", "Trujillo", "Sandoval", "Chavez", "Gallegos"]
ROLES = ["Plaintiff", "Defendant", "Worker", "Employer", "Petitioner", "Respondent", "Appellant"]
ISSUES = [
    "summary judgment",
    "the motion to dismiss",
    "the award of attorney fees",
    "the denial of the continuance",
    "the suppression of the evidence",
    "the jury instruction on negligence",
    "the reduction of benefits",
    "the termination of parental rights",
]
STANDARDS = ["de novo", "for an abuse of discretion", "for substantial evidence", "for plain error"]
ACTS = ["Workers' Compensation Act", "Unfair Practices Act", "Tort Claims Act", "Human Rights Act"]
REPORTERS = ["N.M.", "P.3d", "F.3d", "U.S.", "S. Ct."]

# (label, unfair templates, fair templates of the same topic)
CLAUSES = [
    (
        "Limitation of liability",
        [
            "{C} shall not be liable for any damages whatsoever arising from your use of {S}.",
            "In no event will {C} be responsible for any loss of data, profits or goodwill, even if advised of the possibility.",
            "{S} is provided as is and {C} disclaims all liability for any harm caused by it.",
        ],
        ["{C} is liable for damages caused by its gross negligence or wilful misconduct as provided by law."],
    ),
    (
        "Unilateral termination",
        [
            "{C} may suspend or terminate your account at any time, for any reason, without notice.",
            "We reserve the right to terminate {S} at our sole discretion and without liability to {P}.",
        ],
        ["{P} may close the account at any time from the settings page."],
    ),
    (
        "Unilateral change",
        [
            "{C} may modify these terms at any time and your continued use means you accept the changes.",
            "We may change the features of {S} at our sole discretion without prior notice.",
        ],
        ["If we change these terms we will notify {P} thirty days in advance by email."],
    ),
    (
        "Contract by using",
        [
            "By accessing or using {S} {P} agrees to be bound by these terms.",
            "Your use of {S} constitutes acceptance of these terms of use.",
        ],
        ["Please read these terms carefully before creating an account."],
    ),
    (
        "Content removal",
        [
            "{C} may remove any content that {P} posts at any time for any reason without notice.",
            "We reserve the right to delete or disable any user content in our sole discretion.",
        ],
        ["{P} may delete the content that {P} has posted at any time."],
    ),
    (
        "Jurisdiction",
        [
            "Any dispute shall be brought exclusively in the courts of Delaware, whatever the residence of {P}.",
            "{P} consents to the exclusive jurisdiction of the courts of Santa Clara County, California.",
        ],
        ["{P} may bring a claim in the courts of the place where {P} lives."],
    ),
    (
        "Choice of law",
        [
            "These terms are governed by the laws of the State of California, without regard to conflict of laws principles.",
            "The laws of Ireland govern these terms and any dispute arising from them.",
        ],
        [
            "Nothing in these terms affects the mandatory consumer protection law of the country where {P} lives."
        ],
    ),
    (
        "Arbitration",
        [
            "Any dispute with {C} will be resolved by binding individual arbitration and {P} waives the right to a jury trial.",
            "All claims shall be settled by arbitration administered by the American Arbitration Association.",
        ],
        ["{P} may choose to settle a dispute through mediation or before the courts."],
    ),
]
NEUTRAL = [
    "Welcome to {S}, operated by {C}.",
    "These terms were last updated in {Y}.",
    "{P} must be at least sixteen years old to create an account.",
    "Please contact our support team if {P} has any question about {S}.",
    "{C} processes personal data as described in its privacy policy.",
    "Some features of {S} are available only in certain countries.",
    "{P} is responsible for keeping the password of the account confidential.",
    "Payments are processed by a third party payment provider on behalf of {C}.",
    "{P} may not use {S} to send spam or to infringe the rights of others.",
    "Subscriptions renew every month until {P} cancels them.",
    "We offer customer support by email and chat during business hours.",
    "The headings of these terms are for convenience only.",
]
OPINION = [
    "{R} {N} appeals from the order of the {Ct} granting {I}.",
    "We review {I} {St}.",
    "We affirm the decision of the {Ct}.",
    "We reverse and remand for further proceedings consistent with this opinion.",
    "{R} argues that the {Ct} erred in its interpretation of the {A}.",
    "The {Ct} found that {R} {N} had failed to establish a prima facie case.",
    "See {N} v. {N2}, {V} {Rep} {Pg} (Ct. App. {Y}).",
    "Under the {A}, the burden of proof rests on the party asserting the claim.",
    "The record shows that {R} {N} did not object at trial, and the issue was not preserved.",
    "We are not persuaded by this argument.",
    "Statutory construction is a question of law that we review de novo.",
    "Our primary goal is to give effect to the intent of the legislature.",
    "Accordingly, the {Ct} did not abuse its discretion.",
    "{R} {N} contends that substantial evidence does not support the findings.",
    "Because we hold that the claim is barred, we need not reach the remaining issues.",
    "The judgment of the {Ct} is affirmed.",
]
HOLDINGS = [
    "holding that a claim under the {A} accrues when the injury is discovered",
    "holding that a party waives an argument not raised before the {Ct}",
    "holding that {I} is reviewed {St}",
    "holding that an arbitration clause is unenforceable when it is illusory",
    "holding that a landlord owes no duty to protect a tenant from unforeseeable criminal acts",
    "holding that the exclusivity provision of the {A} bars a tort suit against the employer",
    "holding that a forum selection clause is enforceable absent fraud or overreaching",
    "holding that the statute of limitations is tolled during minority",
    "holding that expert testimony is required to prove the standard of care",
    "holding that a contract term is ambiguous if it is reasonably susceptible to two meanings",
    "holding that hearsay statements are admissible as excited utterances",
    "holding that due process requires notice and an opportunity to be heard",
]


def fill(rng: random.Random, template: str) -> str:
    n, n2 = rng.sample(PEOPLE, 2)
    return template.format(
        C=rng.choice(COMPANIES),
        S=rng.choice(SERVICES),
        P=rng.choice(PARTY),
        Y=rng.randint(1990, 2024),
        R=rng.choice(ROLES),
        N=n,
        N2=n2,
        Ct=rng.choice(COURTS),
        I=rng.choice(ISSUES),
        St=rng.choice(STANDARDS),
        A=rng.choice(ACTS),
        V=rng.randint(100, 999),
        Rep=rng.choice(REPORTERS),
        Pg=rng.randint(1, 1500),
    )


def capitalised(text: str) -> str:
    return text[0].upper() + text[1:]


def tos_sentence(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """(text, raw tags, labels): a neutral sentence, a fair clause of some type, or an unfair one."""
    r = rng.random()
    if r < 0.55:
        return capitalised(fill(rng, rng.choice(NEUTRAL))), [], []
    label, unfair, fair = rng.choice(CLAUSES)
    tag = {"Limitation of liability": "ltd", "Unilateral termination": "ter", "Unilateral change": "ch"}.get(
        label, label[:3].lower()
    )
    if r < 0.75:
        return capitalised(fill(rng, rng.choice(fair))), [f"{tag}1"], []
    labels = [label]
    text = capitalised(fill(rng, rng.choice(unfair)))
    if rng.random() < 0.15:  # a sentence of two unfair types, as real ToS clauses sometimes are
        other, more, _ = rng.choice(CLAUSES)
        if other != label:
            labels.append(other)
            second = fill(rng, rng.choice(more))
            text = text[:-1] + " and " + second[0].lower() + second[1:]
    return text, [f"{tag}{rng.choice((2, 3))}" for _ in labels], labels


def opinion(rng: random.Random) -> str:
    return " ".join(capitalised(fill(rng, rng.choice(OPINION))) for _ in range(rng.randint(25, 80)))


def tos_document(rng: random.Random) -> str:
    return " ".join(tos_sentence(rng)[0] for _ in range(rng.randint(30, 90)))


def write_corpus(path: Path, n: int) -> None:
    rng = random.Random(f"{SEED}-corpus")
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            kind = "opinion" if rng.random() < 0.6 else "tos"
            text = opinion(rng) if kind == "opinion" else tos_document(rng)
            f.write(json.dumps({"kind": kind, "text": text}) + "\n")


def write_unfair_tos(folder: Path, sizes: dict[str, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        rng = random.Random(f"{SEED}-tos-{split}")
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for line in range(n):
                text, tags, labels = tos_sentence(rng)
                doc = f"{rng.choice(COMPANIES)}_{split}"
                row = {"doc": doc, "line": line, "text": text, "tags": tags, "labels": labels}
                f.write(json.dumps({**row, "unfair": int(bool(labels))}) + "\n")


def write_casehold(folder: Path, sizes: dict[str, int]) -> None:
    """The right holding is the one the prompt's context is about (it shares the act, court or issue)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        rng = random.Random(f"{SEED}-casehold-{split}")
        with (folder / f"{split}.csv").open("w", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            out.writerow(["", "citing_prompt", *(f"holding_{i}" for i in range(5)), "label"])
            for i in range(n):
                templates = rng.sample(HOLDINGS, 5)
                holdings = [fill(rng, t) for t in templates]
                label = rng.randrange(5)
                topic = holdings[label].removeprefix("holding that ").split()[:5]
                context = " ".join(capitalised(fill(rng, rng.choice(OPINION))) for _ in range(3))
                cite = f"See {rng.choice(PEOPLE)} v. {rng.choice(PEOPLE)}, {rng.randint(100, 999)} P.3d {rng.randint(1, 999)}"
                prompt = f"{context} The question is whether {' '.join(topic)}. {cite} (<HOLDING>)."
                out.writerow([i, prompt, *holdings, label])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "legal")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    write_corpus(out / "corpus.jsonl", 200)
    sizes = {"train": 800, "dev": 160, "test": 240}
    write_unfair_tos(out / "unfair_tos", sizes)
    write_unfair_tos(out / "unfair_tos_binary", sizes)
    write_casehold(out / "casehold", {"train": 300, "dev": 60, "test": 100})


if __name__ == "__main__":
    main()
