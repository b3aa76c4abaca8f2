#!/usr/bin/env python
"""Write the embedded-default sample data of the biomedical and genomic domains.

    python domains/samples/generate.py [--out DIR]      # default: next to this script

Everything is synthetic and deterministic (fixed seeds; one random stream per output file, so
changing one output leaves the others byte-identical). Vocabularies, templates and sequence
models are written here by hand; nothing is copied from any real dataset. The files mimic the
*formats* of the real benchmarks (NCBI-disease / BC5CDR IOB TSV, PubMedQA JSON, GUE CSV) so the
same task loaders read both. The generator re-reads every file it wrote and checks it parses.

This script is not part of the `zoo` package (it is not imported); it only writes data files.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import hashlib
import itertools
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

SEED = 20250601


def rng_for(name: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so streams are stable across runs and platforms.
    return random.Random(f"{SEED}/{name}")


# =========================================================================== biomedical
# Fixed "world knowledge": each drug has one indication and one typical adverse event, each toxic
# chemical one induced disease, each gene one disease. A masked LM can learn these associations.

# drug, indication (Disease), drug class, adverse event (Disease), outcome measure (no entity inside)
DRUGS = [
    ("metformin", "type 2 diabetes", "biguanide", "lactic acidosis", "HbA1c"),
    ("insulin glargine", "type 1 diabetes", "long-acting insulin analogue", "hypoglycemia", "HbA1c"),
    ("levodopa", "Parkinson's disease", "dopamine precursor", "dyskinesia", "motor scores"),
    ("donepezil", "Alzheimer's disease", "cholinesterase inhibitor", "bradycardia", "cognitive scores"),
    (
        "tamoxifen",
        "breast cancer",
        "selective estrogen receptor modulator",
        "endometrial cancer",
        "recurrence rates",
    ),
    (
        "imatinib",
        "chronic myeloid leukemia",
        "tyrosine kinase inhibitor",
        "peripheral edema",
        "molecular response rates",
    ),
    ("methotrexate", "rheumatoid arthritis", "antimetabolite", "hepatotoxicity", "joint swelling counts"),
    ("atorvastatin", "hypercholesterolemia", "statin", "myopathy", "lipid profiles"),
    ("lisinopril", "hypertension", "ACE inhibitor", "angioedema", "systolic blood pressure"),
    ("warfarin", "atrial fibrillation", "vitamin K antagonist", "intracranial hemorrhage", "stroke rates"),
    ("salbutamol", "asthma", "short-acting beta agonist", "tachycardia", "exacerbation rates"),
    ("infliximab", "Crohn's disease", "TNF inhibitor", "tuberculosis", "remission rates"),
    (
        "sorafenib",
        "hepatocellular carcinoma",
        "multikinase inhibitor",
        "hand-foot skin reaction",
        "overall survival",
    ),
    ("gemcitabine", "pancreatic cancer", "nucleoside analogue", "neutropenia", "overall survival"),
    ("levetiracetam", "epilepsy", "antiepileptic drug", "somnolence", "seizure frequency"),
    (
        "fluoxetine",
        "major depressive disorder",
        "selective serotonin reuptake inhibitor",
        "insomnia",
        "depression scores",
    ),
    ("clozapine", "schizophrenia", "atypical antipsychotic", "agranulocytosis", "psychotic symptoms"),
    ("alendronate", "osteoporosis", "bisphosphonate", "osteonecrosis of the jaw", "bone mineral density"),
    (
        "isoniazid",
        "tuberculosis",
        "antimycobacterial agent",
        "peripheral neuropathy",
        "culture conversion rates",
    ),
    ("sofosbuvir", "hepatitis C", "polymerase inhibitor", "fatigue", "sustained virological response"),
    ("artesunate", "malaria", "artemisinin derivative", "hemolytic anemia", "parasite clearance times"),
    ("cisplatin", "ovarian cancer", "platinum compound", "nephrotoxicity", "progression-free survival"),
    ("doxorubicin", "soft tissue sarcoma", "anthracycline", "cardiomyopathy", "tumour response rates"),
    ("furosemide", "heart failure", "loop diuretic", "hypokalemia", "hospital admissions"),
    (
        "aspirin",
        "myocardial infarction",
        "antiplatelet agent",
        "gastrointestinal bleeding",
        "cardiovascular events",
    ),
    ("sumatriptan", "migraine", "triptan", "coronary vasospasm", "headache days"),
    ("lithium", "bipolar disorder", "mood stabilizer", "hypothyroidism", "relapse rates"),
    (
        "vemurafenib",
        "melanoma",
        "BRAF inhibitor",
        "cutaneous squamous cell carcinoma",
        "progression-free survival",
    ),
    (
        "erlotinib",
        "non-small cell lung cancer",
        "EGFR inhibitor",
        "interstitial lung disease",
        "progression-free survival",
    ),
    (
        "hydroxychloroquine",
        "systemic lupus erythematosus",
        "antimalarial agent",
        "retinopathy",
        "flare rates",
    ),
    ("allopurinol", "gout", "xanthine oxidase inhibitor", "Stevens-Johnson syndrome", "flare rates"),
    ("cyclosporine", "psoriasis", "calcineurin inhibitor", "nephrotoxicity", "skin lesion scores"),
    ("haloperidol", "delirium", "typical antipsychotic", "tardive dyskinesia", "delirium duration"),
    (
        "amiodarone",
        "ventricular tachycardia",
        "class III antiarrhythmic",
        "pulmonary fibrosis",
        "arrhythmia recurrence",
    ),
    ("valproic acid", "epilepsy", "antiepileptic drug", "hepatotoxicity", "seizure frequency"),
    (
        "rituximab",
        "non-Hodgkin lymphoma",
        "anti-CD20 antibody",
        "hepatitis B reactivation",
        "complete response rates",
    ),
]
# toxic chemical (Chemical), the disease it induces in models (Disease)
TOXINS = [
    ("cisplatin", "nephrotoxicity"),
    ("doxorubicin", "cardiotoxicity"),
    ("gentamicin", "ototoxicity"),
    ("acetaminophen", "acute liver failure"),
    ("streptozotocin", "diabetes"),
    ("lipopolysaccharide", "acute lung injury"),
    ("carbon tetrachloride", "liver fibrosis"),
    ("bleomycin", "pulmonary fibrosis"),
    ("haloperidol", "catalepsy"),
    ("pilocarpine", "status epilepticus"),
    ("MPTP", "parkinsonism"),
    ("cyclophosphamide", "hemorrhagic cystitis"),
    ("vincristine", "peripheral neuropathy"),
    ("ethanol", "fatty liver disease"),
    ("bisphenol A", "anxiety"),
    ("puromycin aminonucleoside", "nephrotic syndrome"),
    ("isoproterenol", "myocardial injury"),
    ("dextran sulfate sodium", "colitis"),
    ("cocaine", "cardiac arrhythmia"),
    ("kainic acid", "seizures"),
    ("rotenone", "neurodegeneration"),
    ("reserpine", "depression"),
    ("scopolamine", "memory impairment"),
    ("monocrotaline", "pulmonary hypertension"),
    ("paraquat", "lung injury"),
]
PROTECTORS = [
    "N-acetylcysteine",
    "resveratrol",
    "melatonin",
    "curcumin",
    "quercetin",
    "vitamin E",
    "sulforaphane",
    "taurine",
    "alpha-lipoic acid",
    "edaravone",
    "selenium",
    "zinc sulfate",
]
MECHANISMS = [
    "oxidative stress",
    "lipid peroxidation",
    "apoptosis",
    "neutrophil infiltration",
    "mitochondrial dysfunction",
    "NF-kB activation",
    "caspase-3 activation",
    "inflammatory cytokine release",
]
ANIMALS = [
    "male Wistar rats",
    "Sprague-Dawley rats",
    "C57BL/6 mice",
    "BALB/c mice",
    "zebrafish larvae",
    "New Zealand rabbits",
]
# gene (not an entity in either NER set), disease (Disease)
GENES = [
    ("BRCA1", "breast cancer"),
    ("APC", "colorectal cancer"),
    ("CFTR", "cystic fibrosis"),
    ("HTT", "Huntington's disease"),
    ("LRRK2", "Parkinson's disease"),
    ("APOE", "Alzheimer's disease"),
    ("EGFR", "non-small cell lung cancer"),
    ("DMD", "Duchenne muscular dystrophy"),
    ("JAK2", "polycythemia vera"),
    ("FLT3", "acute myeloid leukemia"),
    ("BRAF", "melanoma"),
    ("KRAS", "pancreatic cancer"),
    ("HLA-B27", "ankylosing spondylitis"),
    ("INS", "type 1 diabetes"),
    ("LDLR", "familial hypercholesterolemia"),
    ("PKD1", "polycystic kidney disease"),
    ("SOD1", "amyotrophic lateral sclerosis"),
    ("VHL", "renal cell carcinoma"),
    ("RB1", "retinoblastoma"),
    ("MECP2", "Rett syndrome"),
    ("FMR1", "fragile X syndrome"),
    ("PAH", "phenylketonuria"),
    ("HBB", "sickle cell anemia"),
    ("F8", "hemophilia A"),
    ("TP53", "Li-Fraumeni syndrome"),
    ("MLH1", "Lynch syndrome"),
    ("NF1", "neurofibromatosis type 1"),
    ("PTEN", "Cowden syndrome"),
    ("IDH1", "glioma"),
    ("ALK", "neuroblastoma"),
    ("GBA", "Gaucher disease"),
    ("ATM", "ataxia telangiectasia"),
]
VARIANTS = [
    "a common promoter polymorphism",
    "a rare missense variant",
    "a frameshift deletion",
    "a splice-site variant",
    "a copy number gain",
    "a nonsense mutation",
]
GENE_POPS = [
    "a Han Chinese cohort",
    "European adults",
    "an Iranian cohort",
    "Japanese patients",
    "African American women",
    "a Brazilian cohort",
    "Finnish families",
    "a Korean population",
]
TISSUES = ["tumour tissue", "peripheral blood", "biopsy specimens", "serum samples", "skin fibroblasts"]
PATIENT_POPS = [
    "adults",
    "older adults",
    "children",
    "adolescents",
    "postmenopausal women",
    "outpatients",
    "veterans",
]
DESIGNS = [
    "randomized controlled trial",
    "double-blind placebo-controlled trial",
    "prospective cohort study",
    "retrospective cohort study",
    "multicentre open-label trial",
    "pilot study",
]

SLOT_LABEL = {
    "drug": "Chemical",
    "comp": "Chemical",
    "chem": "Chemical",
    "protect": "Chemical",
    "ind": "Disease",
    "adv": "Disease",
    "tox": "Disease",
    "gdis": "Disease",
}
NO_CAPITALISE = {"gene"}
PLACEBO = "placebo"  # gene symbols keep their case at a sentence start

THERAPY = {
    "title": [
        "{drug} versus {comp} for {ind}: a {design}.",
        "Efficacy and safety of {drug} in {pop} with {ind}.",
        "Long-term outcomes of {drug} therapy in {ind}.",
        "{drug}-associated {adv} in patients treated for {ind}: a case series.",
        "Effect of {drug} on {measure} in {ind}.",
    ],
    "background": [
        "{ind} remains a major cause of morbidity, and treatment options are limited.",
        "{drug} is {cls} widely used in the management of {ind}.",
        "The benefit of adding {drug} to standard care in {ind} is uncertain.",
        "Few trials have compared {drug} with {comp} in {pop} with {ind}.",
    ],
    "methods": [
        "We conducted a {design} of {n} {pop} with {ind} who received {drug} or {comp} for {weeks} weeks.",
        "In this {design}, {n} patients with {ind} were randomly assigned to {drug} or placebo.",
        "Records of {n} {pop} treated with {drug} for {ind} were reviewed.",
        "The primary outcome was the change in {measure} at {weeks} weeks.",
    ],
    "yes": [
        "{drug} significantly improved {measure} compared with {comp} (P < {pval}).",
        "After {weeks} weeks, {measure} improved in {pct}% of patients receiving {drug} versus {pct2}% of controls (P < {pval}).",
        "Treatment with {drug} was associated with a {pct}% relative improvement in {measure} (95% CI {ci}).",
    ],
    "no": [
        "{measure} did not differ significantly between the {drug} and {comp} groups (P = {pnull}).",
        "No significant effect of {drug} on {measure} was observed (95% CI {cinull}).",
    ],
    "maybe": [
        "{drug} showed a non-significant trend toward better {measure} (P = {pborder}), with benefit confined to {pop}.",
        "The effect of {drug} on {measure} was significant at {weeks} weeks but was lost by the end of follow-up.",
    ],
    "extra": [
        "{adv} occurred in {k} of {n} patients ({kpct}%) receiving {drug}.",
        "The most frequent adverse event was {adv}, reported in {pct}% of the {drug} group.",
        "Two patients discontinued {drug} because of {adv}.",
    ],
    "conclusion_yes": [
        "{drug} is an effective option for {pop} with {ind}.",
        "These results support the use of {drug} in {ind}, although monitoring for {adv} is advised.",
    ],
    "conclusion_no": [
        "{drug} offered no advantage over {comp} in {ind}.",
        "Routine use of {drug} for {ind} is not supported by these data.",
    ],
    "conclusion_maybe": [
        "Larger trials are needed to establish whether {drug} benefits patients with {ind}.",
        "{drug} may help selected patients with {ind}, but the evidence remains inconclusive.",
    ],
    "question": [
        "Does {drug} improve {measure} in patients with {ind}?",
        "Is {drug} more effective than {comp} for {ind}?",
        "Should {drug} be used to treat {ind} in {pop}?",
    ],
}
TOXICITY = {
    "title": [
        "Protective effect of {protect} against {chem}-induced {tox} in {animal}.",
        "{chem}-induced {tox}: the role of {mech}.",
        "{protect} attenuates {chem}-induced {tox} by reducing {mech}.",
    ],
    "background": [
        "{chem} is known to cause {tox}, which limits its clinical use.",
        "{mech} is thought to contribute to {chem}-induced {tox}.",
        "{protect} has antioxidant properties, but its effect on {tox} is unknown.",
    ],
    "methods": [
        "{animal} received {chem} ({dose} mg/kg) with or without {protect} for {days} days.",
        "{tox} was assessed by histology and by markers of {mech}.",
        "{animal} were pretreated with {protect} before a single dose of {chem}.",
    ],
    "yes": [
        "{protect} markedly reduced {mech} and prevented {tox} (P < {pval}).",
        "Pretreatment with {protect} lowered histological injury scores by {pct}% compared with {chem} alone (P < {pval}).",
    ],
    "no": [
        "{protect} did not prevent {tox} or reduce {mech} (P = {pnull}).",
        "Injury scores were similar in animals given {chem} with or without {protect} (P = {pnull}).",
    ],
    "maybe": [
        "{protect} reduced {mech} but had no significant effect on {tox} at the highest dose of {chem}.",
        "Protection by {protect} was seen in females only, and the overall effect on {tox} was not significant (P = {pborder}).",
    ],
    "extra": [
        "{chem} increased markers of {mech} {fold}-fold in the injured tissue.",
        "No deaths occurred in the groups treated with {protect}.",
    ],
    "conclusion_yes": [
        "{protect} may be useful to prevent {chem}-induced {tox}.",
        "These findings identify {mech} as a target to limit {chem}-induced {tox}.",
    ],
    "conclusion_no": [
        "{protect} did not protect against {chem}-induced {tox} in this model.",
    ],
    "conclusion_maybe": [
        "The role of {protect} in {chem}-induced {tox} requires further study.",
    ],
    "question": [
        "Does {protect} protect against {chem}-induced {tox}?",
        "Can {protect} prevent {tox} caused by {chem} in {animal}?",
    ],
}
GENETIC = {
    "title": [
        "Association of {variant} in {gene} with {gdis} in {gpop}.",
        "{gene} expression and prognosis in {gdis}.",
        "Genetic analysis of {gene} in {gpop} with {gdis}.",
    ],
    "background": [
        "{gene} has been implicated in the pathogenesis of {gdis}.",
        "Variants in {gene} are a known cause of {gdis}, but their frequency in {gpop} is unknown.",
        "{gdis} is a heterogeneous disorder with a strong genetic component.",
    ],
    "methods": [
        "We genotyped {n} patients with {gdis} and {n2} healthy controls from {gpop} for {variant} in {gene}.",
        "{gene} expression was measured by immunohistochemistry in {tissue} from {n} patients with {gdis}.",
        "Sequencing of {gene} was performed in {tissue} of {n} unrelated patients.",
    ],
    "yes": [
        "Carriers of {variant} in {gene} had a higher risk of {gdis} (odds ratio {orr}, 95% CI {ci}).",
        "{variant} in {gene} was significantly more frequent in patients with {gdis} than in controls (P < {pval}).",
    ],
    "no": [
        "No association between {variant} in {gene} and {gdis} was found (odds ratio {ornull}, 95% CI {cinull}).",
        "Allele frequencies of {gene} did not differ between patients with {gdis} and controls (P = {pnull}).",
    ],
    "maybe": [
        "The association between {gene} and {gdis} was significant in women but not in men (P for interaction = {pborder}).",
        "{variant} in {gene} was more frequent in patients with {gdis}, but the difference lost significance after correction.",
    ],
    "extra": [
        "{gene} expression was lower in {tissue} than in matched normal samples.",
        "Mutations in {gene} were detected in {pct}% of patients with {gdis}.",
    ],
    "conclusion_yes": [
        "{gene} is a susceptibility gene for {gdis} in {gpop}.",
        "Testing for {gene} variants may help identify individuals at risk of {gdis}.",
    ],
    "conclusion_no": [
        "{variant} in {gene} is unlikely to contribute to {gdis} risk in {gpop}.",
    ],
    "conclusion_maybe": [
        "The role of {gene} in {gdis} should be confirmed in larger cohorts.",
    ],
    "question": [
        "Is {variant} in {gene} associated with {gdis} in {gpop}?",
        "Does {gene} contribute to the risk of {gdis}?",
    ],
}
TOPICS = {"therapy": THERAPY, "toxicity": TOXICITY, "genetic": GENETIC}

BODY = ("background", "methods", "results", "conclusion")
Segment = tuple[str, str | None]  # (text, entity type or None)


def topic_slots(rng: random.Random, topic: str) -> dict[str, str]:
    """One study's consistent slot values (entities and numbers)."""
    pnull = f"0.{rng.randint(12, 94)}"
    n, k = rng.choice([24, 36, 48, 60, 72, 96, 120, 148, 210, 256, 312, 480, 640, 1024]), rng.randint(2, 19)
    lo = rng.choice([1.1, 1.2, 1.3, 1.4, 1.5])
    slots = {
        "n": str(n),
        "kpct": f"{100 * k / n:.1f}",
        "n2": str(rng.choice([50, 100, 150, 200, 300, 500])),
        "pct": str(rng.randint(8, 72)),
        "pct2": str(rng.randint(5, 40)),
        "k": str(k),
        "pval": rng.choice(["0.05", "0.01", "0.001"]),
        "pnull": pnull,
        "pborder": rng.choice(["0.06", "0.07", "0.08", "0.09"]),
        "ci": f"{lo}-{lo + rng.choice([0.8, 1.2, 1.7, 2.5]):.1f}",
        "cinull": f"0.{rng.randint(6, 9)}-1.{rng.randint(1, 5)}",
        "orr": f"{lo + rng.choice([0.4, 0.6, 0.9]):.1f}",
        "ornull": f"{rng.choice(['0.9', '1.0', '1.1'])}",
        "weeks": str(rng.choice([4, 8, 12, 24, 52])),
        "days": str(rng.choice([7, 10, 14, 21, 28])),
        "dose": str(rng.choice([5, 10, 20, 50, 100])),
        "fold": str(rng.choice([2, 3, 4])),
        "design": rng.choice(DESIGNS),
        "pop": rng.choice(PATIENT_POPS),
        "gpop": rng.choice(GENE_POPS),
        "tissue": rng.choice(TISSUES),
        "animal": rng.choice(ANIMALS),
        "mech": rng.choice(MECHANISMS),
        "variant": rng.choice(VARIANTS),
        "protect": rng.choice(PROTECTORS),
    }
    if topic == "therapy":
        drug, ind, cls, adv, measure = rng.choice(DRUGS)
        # comparator: another drug for the same indication, else placebo (not an entity)
        comp = rng.choice([d[0] for d in DRUGS if d[1] == ind and d[0] != drug] or [PLACEBO])
        article = "an" if cls[0] in "aeiouAEIOU" else "a"
        slots.update(drug=drug, ind=ind, cls=f"{article} {cls}", adv=adv, measure=measure, comp=comp)
    elif topic == "toxicity":
        chem, tox = rng.choice(TOXINS)
        slots.update(chem=chem, tox=tox)
    else:
        gene, gdis = rng.choice(GENES)
        slots.update(gene=gene, gdis=gdis)
    return slots


def render(template: str, slots: dict[str, str]) -> list[Segment]:
    """Template -> segments; slot values keep their entity type. Capitalises the sentence start."""
    segments: list[Segment] = []
    for piece in re.split(r"(\{\w+\})", template):
        if not piece:
            continue
        if piece.startswith("{"):
            name = piece[1:-1]
            text = slots[name]
            label = None if text == PLACEBO else SLOT_LABEL.get(name)
            if not segments and name not in NO_CAPITALISE:
                text = text[0].upper() + text[1:]
            segments.append((text, label))
        else:
            segments.append((piece if segments else piece[0].upper() + piece[1:], None))
    return segments


def sentence_text(segments: Sequence[Segment]) -> str:
    return "".join(text for text, _ in segments)


def iob(segments: Sequence[Segment], keep: set[str]) -> list[tuple[str, str]]:
    """Tokenise like the real IOB files (words and single punctuation marks) and tag IOB2."""
    rows: list[tuple[str, str]] = []
    for text, label in segments:
        tokens = re.findall(r"\w+|[^\w\s]", text)
        for j, token in enumerate(tokens):
            tag = "O" if label not in keep else ("B-" if j == 0 else "I-") + label
            rows.append((token, tag))
    return rows


def study(rng: random.Random, topic: str, answer: str) -> dict[str, list[list[Segment]] | list[Segment]]:
    """One synthetic abstract, sections as rendered sentences; `answer` (yes/no/maybe) drives results."""
    t = TOPICS[topic]
    slots = topic_slots(rng, topic)

    def pick(key: str) -> list[Segment]:
        return render(rng.choice(t[key]), slots)

    results = [pick(answer)] + ([pick("extra")] if rng.random() < 0.5 else [])
    rng.shuffle(results)
    return {
        "title": pick("title"),
        "question": pick("question"),
        "background": [pick("background")],
        "methods": [pick("methods")] + ([pick("methods")] if rng.random() < 0.3 else []),
        "results": results,
        "conclusion": [pick(f"conclusion_{answer}")],
    }


def draw_answer(rng: random.Random) -> str:
    return rng.choices(["yes", "no", "maybe"], weights=[55, 33, 12])[0]


def biomedical_corpus(n_docs: int) -> list[str]:
    """Mini-abstracts: title + a few body sentences (section order kept)."""
    rng = rng_for("biomedical/corpus")
    docs = []
    for _ in range(n_docs):
        s = study(rng, rng.choice(list(TOPICS)), draw_answer(rng))
        body = [x for key in BODY for x in s[key]]  # type: ignore[union-attr]
        keep = sorted(rng.sample(range(len(body)), k=min(len(body), rng.randint(1, 3))))
        sentences = [s["title"]] + [body[i] for i in keep]
        docs.append(" ".join(sentence_text(x) for x in sentences))  # type: ignore[arg-type]
    return docs


def ner_sentences(name: str, n: int, topic_weights: dict[str, int]) -> list[list[Segment]]:
    rng = rng_for(name)
    out: list[list[Segment]] = []
    while len(out) < n:
        s = study(
            rng, rng.choices(list(topic_weights), weights=list(topic_weights.values()))[0], draw_answer(rng)
        )
        pool = [s["title"]] + [x for key in BODY for x in s[key]]  # type: ignore
        out.extend(rng.sample(pool, k=min(2, len(pool))))  # two sentences per abstract, like excerpts
    return out[:n]


def write_iob(path: Path, sentences: Sequence[list[Segment]], keep: set[str]) -> None:
    blocks = ["\n".join(f"{tok}\t{tag}" for tok, tag in iob(s, keep)) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def pubmedqa_items(name: str, n: int, first_id: int) -> dict[str, dict]:
    rng = rng_for(name)
    items: dict[str, dict] = {}
    for i in range(n):
        answer = draw_answer(rng)
        topic = rng.choice(list(TOPICS))
        s = study(rng, topic, answer)
        contexts, labels = [], []
        for key, label in (
            ("background", rng.choice(["BACKGROUND", "OBJECTIVE"])),
            ("methods", "METHODS"),
            ("results", "RESULTS"),
        ):
            for seg in s[key]:  # type: ignore[union-attr]
                contexts.append(sentence_text(seg))  # type: ignore[arg-type]
                labels.append(label)
        entities = {t for seg in s["results"] for t, lab in seg if lab}  # type: ignore[union-attr]
        meshes = ["Humans"] + sorted({t[0].upper() + t[1:] for t in entities})
        items[str(first_id + i)] = {  # numeric ids shaped like PMIDs; synthetic, not real PMIDs
            "QUESTION": sentence_text(s["question"]),  # type: ignore[arg-type]
            "CONTEXTS": contexts,
            "LABELS": labels,
            "MESHES": meshes,
            "YEAR": str(rng.randint(1995, 2020)),
            "reasoning_required_pred": answer,
            "reasoning_free_pred": answer,
            "final_decision": answer,
            "LONG_ANSWER": sentence_text(s["conclusion"][0]),  # type: ignore[index]
        }
    return items


def write_biomedical(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    docs = biomedical_corpus(2000)
    (out / "corpus.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    sizes = {"train": 300, "dev": 100, "test": 100}
    for task, keep, weights in (
        ("ncbi_disease", {"Disease"}, {"genetic": 6, "therapy": 3, "toxicity": 1}),
        ("bc5cdr", {"Chemical", "Disease"}, {"toxicity": 5, "therapy": 4, "genetic": 1}),
    ):
        (out / task).mkdir(exist_ok=True)
        for split, n in sizes.items():
            write_iob(
                out / task / f"{split}.tsv", ner_sentences(f"biomedical/{task}/{split}", n, weights), keep
            )
    (out / "pubmedqa").mkdir(exist_ok=True)
    first = {"train": 1000001, "dev": 2000001, "test": 3000001}
    for split, n in {"train": 180, "dev": 40, "test": 70}.items():
        items = pubmedqa_items(f"biomedical/pubmedqa/{split}", n, first[split])
        (out / "pubmedqa" / f"{split}.json").write_text(
            json.dumps(items, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )


# =========================================================================== genomic

BASES = "ACGT"
COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
CODONS = ["".join(c) for c in itertools.product(BASES, repeat=3) if "".join(c) not in ("TAA", "TAG", "TGA")]
TATA_BOXES = ["TATAAA", "TATAAAA", "TATATAA", "TATAAAT", "TATTTAA", "TATAAGA"]
INR = ["TCAGTC", "TCATTC", "CCAGTC", "TCAGTT"]


class Markov:
    """Order-3 Markov chain over ACGT with a skewed (Dirichlet) next-base table per context."""

    def __init__(self, rng: random.Random, gc: float, concentration: float = 3.0) -> None:
        comp = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
        self.table: dict[str, list[float]] = {}
        for ctx in itertools.product(BASES, repeat=3):
            g = [rng.gammavariate(concentration * p, 1.0) + 1e-3 for p in comp]
            total = sum(g)
            self.table["".join(ctx)] = list(itertools.accumulate(x / total for x in g))

    def sample(self, rng: random.Random, n: int) -> str:
        out = [rng.choice(BASES) for _ in range(3)]
        for _ in range(max(0, n - 3)):
            cum = self.table[out[-3] + out[-2] + out[-1]]
            out.append(BASES[min(3, bisect.bisect(cum, rng.random() * cum[-1]))])
        return "".join(out[:n])


class GenomeModel:
    """Sequence grammar shared by the corpus and the tasks, so pretraining sees the task signals."""

    def __init__(self) -> None:
        rng = rng_for("genomic/model")
        self.intergenic = Markov(rng, gc=0.40)
        self.intron = Markov(rng, gc=0.32)
        self.gc_rich = Markov(rng, gc=0.72)
        weights = [rng.gammavariate(0.8, 1.0) for _ in CODONS]
        self.codon_cum = list(itertools.accumulate(weights))

    def coding(self, rng: random.Random, n_bases: int) -> str:
        codons = rng.choices(CODONS, cum_weights=self.codon_cum, k=n_bases // 3 + 1)
        return "".join(codons)[:n_bases]

    def pyrimidines(self, rng: random.Random, n: int) -> str:
        return "".join(rng.choice("CT") if rng.random() < 0.9 else rng.choice("AG") for _ in range(n))

    def promoter(
        self, rng: random.Random, length: int = 70, elements: tuple[bool, bool, bool] = (True, True, True)
    ) -> str:
        """GC-rich upstream, TATA box ~30 bp before the TSS, initiator at the TSS (~position 55 of 70)."""
        gc, tata, inr = elements
        up = self.gc_rich.sample(rng, 26) if gc else self.intergenic.sample(rng, 26)
        if gc and rng.random() < 0.5:
            i = rng.randint(0, 20)
            up = up[:i] + "GGGCGG" + up[i + 6 :]
        box = rng.choice(TATA_BOXES) if tata else self.intergenic.sample(rng, 6)
        spacer = self.intergenic.sample(rng, rng.randint(19, 23))
        start = rng.choice(INR) if inr else self.intergenic.sample(rng, 6)
        seq = self.intergenic.sample(rng, rng.randint(0, 3)) + up + box + spacer + start
        return (seq + self.intergenic.sample(rng, length))[:length]

    def donor_site(self, rng: random.Random) -> tuple[str, str]:
        """(exon end, intron start): exon ends in MAG, intron starts GTRAGT."""
        exon_end = rng.choice(["CAG", "AAG"]) if rng.random() < 0.8 else self.intergenic.sample(rng, 3)
        tail = (
            rng.choices(["AAGT", "GAGT", "AAGG"], weights=[5, 3, 1])[0]
            if rng.random() < 0.8
            else self.intron.sample(rng, 4)
        )
        return exon_end, "GT" + tail

    def acceptor_site(self, rng: random.Random) -> str:
        """Intron end: branch point, polypyrimidine tract, then YAG (the AG is the last two bases)."""
        branch = rng.choice(["CTAAC", "CTGAC", "TTAAT", "CTAAT"])
        return (
            branch
            + self.intron.sample(rng, rng.randint(8, 18))
            + self.pyrimidines(rng, rng.randint(12, 20))
            + rng.choice(["CAG", "TAG", "CAG"])
        )

    def gene(self, rng: random.Random) -> str:
        """promoter, 5' UTR, 2-3 exons separated by introns, stop codon, polyadenylation signal."""
        parts = [self.promoter(rng), self.intergenic.sample(rng, rng.randint(15, 40)), "ATG"]
        for exon in range(rng.randint(2, 3)):
            parts.append(self.coding(rng, 3 * rng.randint(30, 90)))
            if exon < 2 and rng.random() < 0.85:
                exon_end, intron_start = self.donor_site(rng)
                parts += [
                    exon_end,
                    intron_start,
                    self.intron.sample(rng, rng.randint(60, 300)),
                    self.acceptor_site(rng),
                ]
        parts += [
            rng.choice(["TAA", "TAG", "TGA"]),
            self.intergenic.sample(rng, rng.randint(20, 60)),
            "AATAAA",
            self.intergenic.sample(rng, rng.randint(10, 30)),
        ]
        return "".join(parts)


def mutate(rng: random.Random, seq: str, rate: float) -> str:
    return "".join(rng.choice(BASES) if rng.random() < rate else b for b in seq)


def revcomp(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def chromosomes(model: GenomeModel, lengths: Sequence[int]) -> list[str]:
    """Markov background with planted gene-family copies, soft-masked transposon copies,
    microsatellites, one assembly gap (N) and a few IUPAC ambiguity codes."""
    rng = rng_for("genomic/corpus")
    genes = [model.gene(rng) for _ in range(14)]
    transposons = [model.intergenic.sample(rng, 320), model.gc_rich.sample(rng, 260)]
    out = []
    for c, target in enumerate(lengths):
        parts: list[str] = []
        size = 0
        while size < target:
            parts.append(model.intergenic.sample(rng, rng.randint(300, 2500)))
            r = rng.random()
            if r < 0.55:
                feature = mutate(rng, rng.choice(genes), 0.02)
                feature = feature if rng.random() < 0.5 else revcomp(feature)
            elif r < 0.85:
                feature = mutate(rng, rng.choice(transposons), 0.06).lower()  # soft-masked repeat
            else:
                feature = rng.choice(["CA", "AT", "GGC", "TTAGGG", "AAG"]) * rng.randint(8, 25)
            parts.append(feature)
            size += len(parts[-2]) + len(feature)
        seq = list("".join(parts)[:target])
        if c == 1:
            gap = rng.randint(1000, target - 1200)
            seq[gap : gap + 100] = "N" * 100
        for _ in range(3):
            i = rng.randrange(target)
            seq[i] = rng.choice("RYSWKM") if seq[i].isupper() else rng.choice("rysw")
        out.append("".join(seq))
    return out


CHROMOSOME_NOTE = "order-3 Markov background, planted gene families, soft-masked repeats; Domain Zoo sample"


def write_fasta(path: Path, records: Sequence[tuple[str, str]], width: int = 80) -> None:
    with path.open("w", encoding="ascii") as f:
        for header, seq in records:
            f.write(f">{header}\n")
            for i in range(0, len(seq), width):
                f.write(seq[i : i + width] + "\n")


def prom_rows(model: GenomeModel, name: str, n: int) -> list[tuple[str, int]]:
    """Balanced: label 1 = promoter-like (GC-rich upstream and/or TATA box, initiator); label 0 =
    background, a third of it with a decoy TATA box or GC-rich stretch at a random place."""
    rng = rng_for(name)
    rows = []
    for i in range(n):
        if i % 2 == 0:
            gc, tata = rng.random() < 0.85, rng.random() < 0.8
            if not (gc or tata):
                tata = True
            rows.append((model.promoter(rng, 70, (gc, tata, rng.random() < 0.7)), 1))
        else:
            seq = model.intergenic.sample(rng, 70)
            r = rng.random()
            if r < 0.2:
                j = rng.randint(0, 64)
                seq = seq[:j] + rng.choice(TATA_BOXES)[:6] + seq[j + 6 :]
            elif r < 0.35:
                j, k = rng.randint(0, 45), rng.randint(15, 25)
                seq = seq[:j] + model.gc_rich.sample(rng, k) + seq[j + k :]
            rows.append((seq[:70], 0))
    rng.shuffle(rows)
    return rows


def splice_rows(model: GenomeModel, name: str, n: int) -> list[tuple[str, int]]:
    """400 bp windows centred on the site, labelled as in the real GUE files: 0 = acceptor (intron
    ends ...YAG at 198-199, exon from 200), 1 = donor (exon ends at 199, GT at 200-201), 2 = neither
    (background, intron or coding sequence, half of them with a decoy GT/AG at the centre)."""
    rng = rng_for(name)
    rows = []
    for _ in range(n):
        label = rng.choices([0, 1, 2], weights=[22, 22, 56])[0]
        if label == 0:
            intron = model.intron.sample(rng, 200) + model.acceptor_site(rng)
            seq = intron[-200:] + model.coding(rng, 200)
        elif label == 1:
            exon_end, intron_start = model.donor_site(rng)
            seq = (model.coding(rng, 200) + exon_end)[-200:] + intron_start + model.intron.sample(rng, 194)
        else:
            kind = rng.choice(["intergenic", "intron", "coding"])
            seq = model.coding(rng, 400) if kind == "coding" else getattr(model, kind).sample(rng, 400)
            if rng.random() < 0.5:
                seq = seq[:198] + "AGGT" + seq[202:] if rng.random() < 0.5 else seq[:200] + "GT" + seq[202:]
        rows.append((seq, label))
    return rows


def write_csv(path: Path, rows: Sequence[tuple[str, int]]) -> None:
    path.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows), encoding="ascii")


def write_genomic(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = GenomeModel()
    chroms = chromosomes(model, [110_000, 80_000, 50_000])
    write_fasta(
        out / "corpus.fa",
        [
            (
                f"chrS{i + 1} synthetic chromosome {i + 1} ({len(s)} bp): {CHROMOSOME_NOTE}",
                s,
            )
            for i, s in enumerate(chroms)
        ],
    )
    for task, make, sizes in (
        ("gue_prom_core_all", prom_rows, {"train": 1200, "dev": 200, "test": 200}),
        ("gue_splice_reconstructed", splice_rows, {"train": 360, "dev": 80, "test": 80}),
    ):
        (out / task).mkdir(exist_ok=True)
        for split, n in sizes.items():
            write_csv(out / task / f"{split}.csv", make(model, f"genomic/{task}/{split}", n))


# =========================================================================== checks


def check_iob(path: Path, types: set[str]) -> int:
    valid = {"O"} | {f"{p}-{t}" for p in "BI" for t in types}
    sentences, prev = 0, "O"
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and lines[-2] != "", f"{path}: must end with exactly one newline"
    for no, line in enumerate(lines[:-1], 1):
        if not line:
            prev = "O"
            continue
        token, tag = line.split("\t")
        assert token and " " not in token and tag in valid, f"{path}:{no}: bad line {line!r}"
        assert not tag.startswith("I-") or prev[2:] == tag[2:], f"{path}:{no}: I- tag without B-"
        sentences += no == 1 or lines[no - 2] == ""
        prev = tag
    return sentences


def check(out: Path) -> list[str]:
    """Re-read every file; return a summary. Raises AssertionError on anything malformed."""
    summary = []
    bio, gen = out / "biomedical", out / "genomic"
    docs = (bio / "corpus.txt").read_text(encoding="utf-8").splitlines()
    assert len(docs) >= 2000 and all(d.strip() for d in docs)
    summary.append(f"biomedical/corpus.txt: {len(docs)} documents, {sum(len(d.split()) for d in docs)} words")
    for task, types in (("ncbi_disease", {"Disease"}), ("bc5cdr", {"Chemical", "Disease"})):
        for split in ("train", "dev", "test"):
            path = bio / task / f"{split}.tsv"
            n = check_iob(path, types)
            tags = Counter(line.split("\t")[1] for line in path.read_text().splitlines() if line)
            assert all(tags[f"B-{t}"] > 0 for t in types), f"{path}: missing entity types"
            summary.append(
                f"biomedical/{task}/{split}.tsv: {n} sentences, "
                + ", ".join(f"{t} {tags[f'B-{t}']}" for t in sorted(types))
            )
    for split in ("train", "dev", "test"):
        data = json.loads((bio / "pubmedqa" / f"{split}.json").read_text(encoding="utf-8"))
        for pid, item in data.items():
            assert pid.isdigit() and item["final_decision"] in ("yes", "no", "maybe")
            assert len(item["CONTEXTS"]) == len(item["LABELS"]) and all(
                isinstance(c, str) for c in item["CONTEXTS"]
            )
        counts = Counter(item["final_decision"] for item in data.values())
        summary.append(
            f"biomedical/pubmedqa/{split}.json: {len(data)} items, "
            f"yes/no/maybe {counts['yes']}/{counts['no']}/{counts['maybe']}"
        )
    from Bio import SeqIO

    records = list(SeqIO.parse(gen / "corpus.fa", "fasta"))
    assert len(records) == 3
    summary.append(f"genomic/corpus.fa: {len(records)} records, {sum(len(r) for r in records)} bp")
    seen: dict[str, str] = {}
    for task, length, labels in (
        ("gue_prom_core_all", 70, {"0", "1"}),
        ("gue_splice_reconstructed", 400, {"0", "1", "2"}),
    ):
        for split in ("train", "dev", "test"):
            path = gen / task / f"{split}.csv"
            with path.open(newline="") as f:
                reader = csv.reader(f)
                assert next(reader) == ["sequence", "label"]
                rows = list(reader)
            for seq, label in rows:
                assert len(seq) == length and set(seq) <= set(BASES) and label in labels, f"{path}: bad row"
                assert seen.setdefault(seq, f"{task}/{split}") == f"{task}/{split}", (
                    f"{path}: duplicate across splits"
                )
            counts = Counter(label for _, label in rows)
            assert set(counts) == labels, f"{path}: a label is missing"
            summary.append(
                f"genomic/{task}/{split}.csv: {len(rows)} rows, labels {dict(sorted(counts.items()))}"
            )
    try:  # the package's own reader, when the project is installed
        from zoo.corpus import count_documents
        from zoo.domain import CorpusSpec
    except ImportError:
        pass
    else:
        assert count_documents(CorpusSpec("text"), [bio / "corpus.txt"]) == len(docs)
        assert count_documents(CorpusSpec("fasta", {"window": 2048}), [gen / "corpus.fa"]) > 100
    total = sum(
        p.stat().st_size
        for p in out.rglob("*")
        if p.is_file() and p.suffix in (".txt", ".tsv", ".json", ".fa", ".csv")
    )
    summary.append(f"total data bytes: {total}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    write_biomedical(args.out / "biomedical")
    write_genomic(args.out / "genomic")
    for line in check(args.out):
        print(line)
    digest = hashlib.sha256()
    for p in sorted(args.out.rglob("*")):
        if p.is_file() and p.suffix in (".txt", ".tsv", ".json", ".fa", ".csv"):
            digest.update(p.relative_to(args.out).as_posix().encode() + p.read_bytes())
    print(f"sha256 of all data: {digest.hexdigest()[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
