#!/usr/bin/env python
"""Write the embedded-default sample data of the url domain.

    python domains/samples/generate_url.py [--out DIR]   # default: next to this script

Everything is synthetic and deterministic (one seeded random stream per output file): site names are
made from word lists written here, phishing URLs from hand-written lure patterns (brand words in
subdomains, look-alike hosts, raw IPs, free-hosting paths, punycode, percent-encoded redirects). Nothing
is copied from any URL list. The files mimic the real formats:
- corpus.txt: one URL per line (benign and suspicious, unlabelled);
- phishcrawl/{train,dev,test}.csv and phiusiil/{train,dev,test}.csv: `url,label` (legit/malicious and
  legitimate/phishing; phiusiil's legitimate URLs are bare `https://www.<domain>` homepages, the
  shortcut of the real set).
This script is not part of the `zoo` package; it only writes data files.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Sequence
from pathlib import Path

SEED = 20261130
WORDS = [
    "green",
    "river",
    "bright",
    "north",
    "maple",
    "stone",
    "blue",
    "harbor",
    "city",
    "garden",
    "metro",
    "pixel",
    "cloud",
    "sun",
    "forest",
    "urban",
    "silver",
    "lake",
    "peak",
    "open",
    "media",
    "health",
    "travel",
    "books",
    "music",
    "school",
    "news",
    "shop",
    "tech",
    "food",
    "home",
    "sport",
]
TLDS = ["com", "org", "net", "de", "co.uk", "edu", "io", "fr"]
SECTIONS = ["blog", "news", "products", "about", "events", "docs", "category", "articles", "shop", "help"]
BRANDS = [
    "paypal",
    "apple",
    "netflix",
    "amazon",
    "microsoft",
    "office365",
    "wellsfargo",
    "chase",
    "dhl",
    "instagram",
]
LURES = [
    "login",
    "verify",
    "secure",
    "account",
    "update",
    "signin",
    "confirm",
    "billing",
    "unlock",
    "support",
]
BAD_TLDS = ["xyz", "top", "tk", "ml", "ga", "cf", "buzz", "info"]
FREE_HOSTS = ["duckdns.org", "000webhostapp.com", "web.app", "workers.dev", "weebly.com", "glitch.me"]


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}/{name}")


def site(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}{rng.choice(WORDS)}.{rng.choice(TLDS)}"


def slug(rng: random.Random, n: int = 3) -> str:
    return "-".join(rng.choice(WORDS) for _ in range(n))


def benign(rng: random.Random) -> str:
    scheme = "https" if rng.random() < 0.8 else "http"
    host = ("www." if rng.random() < 0.6 else "") + site(rng)
    form = rng.randrange(5)
    if form == 0:
        return f"{scheme}://{host}/"
    if form == 1:
        return f"{scheme}://{host}/{rng.choice(SECTIONS)}/{rng.randrange(2015, 2025)}/{rng.randrange(1, 13):02d}/{slug(rng)}"
    if form == 2:
        return f"{scheme}://{host}/{rng.choice(SECTIONS)}?id={rng.randrange(100, 99999)}&page={rng.randrange(1, 9)}"
    if form == 3:
        anchor = f"#{rng.choice(WORDS)}" if rng.random() < 0.5 else ""
        return f"{scheme}://{host}/{rng.choice(SECTIONS)}/{slug(rng, 2).replace('-', '_')}.html{anchor}"
    if form == 4 and rng.random() < 0.3:
        return f"{scheme}://{host}/~{rng.choice(WORDS)}/{rng.choice(SECTIONS)}/"
    return f"{scheme}://{host}/search?q={rng.choice(WORDS)}+{rng.choice(WORDS)}&lang=en"


def malicious(rng: random.Random) -> str:
    brand, lure = rng.choice(BRANDS), rng.choice(LURES)
    token = "".join(rng.choice("abcdef0123456789") for _ in range(rng.randrange(8, 24)))
    form = rng.randrange(7)
    if form == 0:  # brand in a subdomain of a throwaway host
        return f"http://{brand}.{lure}-{rng.choice(LURES)}.{rng.choice(WORDS)}{rng.randrange(10, 99)}.{rng.choice(BAD_TLDS)}/{lure}.php?session={token}"
    if form == 1:  # raw IP
        ip = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        return f"http://{ip}/{brand}/{lure}/index.html"
    if form == 2:  # free hosting
        return f"https://{brand}-{lure}{rng.randrange(100, 999)}.{rng.choice(FREE_HOSTS)}/{lure}/{token}"
    if form == 3:  # look-alike with digits
        swapped = brand.replace("o", "0").replace("l", "1").replace("a", "4")
        return f"https://www.{swapped}-{lure}.{rng.choice(BAD_TLDS)}/{lure}?account={token}"
    if form == 4:  # punycode host
        return f"https://xn--{brand[:4]}-{token[:4]}.{rng.choice(BAD_TLDS)}/{lure}/"
    if form == 5:  # percent-encoded redirect to a phishing page
        return f"https://{site(rng)}/redirect?url=http%3A%2F%2F{brand}-{lure}.{rng.choice(BAD_TLDS)}%2F{lure}"
    return f"http://{site(rng)}@{brand}-{lure}.{rng.choice(BAD_TLDS)}/{token}/{lure}.html"  # userinfo trick


def homepage(rng: random.Random) -> str:
    return f"https://www.{site(rng)}"


def write_csv(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "label"])
        writer.writerows(rows)


def labelled(rng: random.Random, n: int, names: tuple[str, str], legit: object) -> list[tuple[str, str]]:
    rows = []
    for k in range(n):
        bad = k % 9 < 4  # about 44 % malicious, as in PhishCrawl
        rows.append((malicious(rng), names[1]) if bad else (legit(rng), names[0]))
    rng.shuffle(rows)
    return rows


def write_all(out: Path) -> None:
    base = out / "url"
    rng = rng_for("corpus")
    urls = [malicious(rng) if rng.random() < 0.3 else benign(rng) for _ in range(5000)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "corpus.txt").write_text("\n".join(urls) + "\n", encoding="utf-8")
    for task, names, legit in (
        ("phishcrawl", ("legit", "malicious"), benign),
        ("phiusiil", ("legitimate", "phishing"), homepage),
    ):
        (base / task).mkdir(exist_ok=True)
        for split, n in (("train", 400), ("dev", 100), ("test", 100)):
            write_csv(base / task / f"{split}.csv", labelled(rng_for(f"{task}/{split}"), n, names, legit))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    write_all(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
