"""Corpus readers: raw pretraining files -> a stream of documents (str).

Built-in formats (CorpusSpec.format):
- "text": .txt = one document per non-empty line; .jsonl = one JSON object per line, document in
  field `text` (option `field`). Any other extension of a file named explicitly reads as .txt.
- "fasta": FASTA (.fa .fasta .fna .fas .ffn .frn .seq) or GenBank (.gb .gbk .genbank) through
  biopython. Sequences are uppercased (lowercase = soft-masking, allowed), IUPAC ambiguity codes
  become N (option `iupac: keep` keeps them), and each record is cut into windows of `window`
  bases (default 2048) every `stride` bases (default = window: no overlap; smaller = overlap).
  Windows with more than `max_n_fraction` N (default 0.5: assembly gaps) are skipped.
- "stackexchange": a Stack Exchange data dump's Posts.xml (streamed; HTML stripped, code kept
  verbatim; option `comments: true` appends each post's comments from the Comments.xml beside it, see
  `zoo.stackexchange`), and .txt/.jsonl files read as "text" (option `field`).
- "urls": one URL per line (.txt), or the URL column of a .csv (option `column`, default `url`); each URL
  checked (non-empty, no control characters, see `zoo.urls`).
- "pkg.module:func": a third-party reader, called as func(path, **options) for each given path and
  yielding str documents.
Every built-in reads .gz transparently. A directory stands for the matching files inside it,
recursively, in sorted order. Reading streams (generators): genomes never sit in memory whole,
only one record at a time. Paths and the format are checked before anything is read, and the start
of every file is sniffed (`sniff`): binary data, an HTML page or a FASTA/GenBank file given as text,
and a text or protein file given as DNA are named as such instead of being trained on.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from zoo.domain import CorpusSpec
from zoo.errors import UserError, did_you_mean

BUILTIN_FORMATS = ("text", "fasta", "stackexchange", "urls")
TEXT_SUFFIXES = (".txt", ".jsonl")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".frn", ".seq")
GENBANK_SUFFIXES = (".gb", ".gbk", ".genbank")
IUPAC_CODES = "RYKMSWBDHV"
_OPTIONS = {
    "text": ("field",),
    "fasta": ("window", "stride", "iupac", "max_n_fraction"),
    "stackexchange": ("comments", "field"),
    "urls": ("column",),
}
# Letters a DNA record may hold (either case); anything else is an error naming record and position.
_INVALID_DNA = re.compile(f"[^ACGTN{IUPAC_CODES}acgtn{IUPAC_CODES.lower()}]")
_TO_N = str.maketrans({c: "N" for c in IUPAC_CODES})


def _suffix(path: Path) -> str:
    """The meaningful extension, looking through .gz: 'x.fa.gz' -> '.fa'."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _expand(paths: Sequence[Path | str], suffixes: tuple[str, ...] | None) -> list[Path]:
    """Files to read: each existing file as given; a directory -> its matching files (sorted, recursive)."""
    if not paths:
        raise UserError("no corpus path given (pass --corpus FILE_OR_DIR)")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not p.name.startswith(".") and (suffixes is None or _suffix(p) in suffixes)
            )
            if not found:
                kinds = ", ".join(suffixes) if suffixes else "any"
                raise UserError(f"no corpus files in directory {path} (looked for {kinds}, optionally .gz)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise UserError(f"corpus {path} is not a regular file or folder (a device, pipe or socket)")
        else:
            raise UserError(f"corpus file {path} does not exist")
    return files


_SNIFF_BYTES = 4096
_HTML = re.compile(rb"^\s*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)


def _head(path: Path) -> bytes:
    """The first few KB of a file (decompressed for .gz)."""
    try:
        with gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb") as f:
            return f.read(_SNIFF_BYTES)
    except (OSError, EOFError) as exc:  # e.g. a truncated or fake .gz
        raise UserError(f"cannot read {path}: {exc}") from None


def sniff(path: Path, fmt: str) -> None:
    """A UserError when the start of `path` shows it is not what format `fmt` ('text' or 'fasta') reads."""
    head = _head(path)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise UserError(f"{path} holds binary data (a NUL byte at offset {nul}), not a {fmt} corpus")
    lines = [x.strip() for x in head.splitlines() if x.strip()]
    if not lines:
        return  # empty: the reader says so once every file is read
    first = lines[0]
    if _HTML.match(first):
        raise UserError(f"{path} is an HTML page, not a {fmt} corpus; save the page's text instead")
    looks_fasta = (
        first.startswith(b">") and len(lines) > 1 and not _INVALID_DNA.search(lines[1].decode("latin-1"))
    )
    looks_genbank = first.startswith(b"LOCUS ")
    if fmt == "text":
        suffix = _suffix(path)
        if looks_fasta or looks_genbank or suffix in FASTA_SUFFIXES + GENBANK_SUFFIXES:
            kind = "GenBank" if looks_genbank or suffix in GENBANK_SUFFIXES else "FASTA"
            raise UserError(
                f"{path} is a {kind} file, but this domain's corpus is text; give text files "
                "(.txt, .jsonl), or use a domain whose corpus format is fasta"
            )
        return
    genbank = _suffix(path) in GENBANK_SUFFIXES
    if genbank and not looks_genbank:
        raise UserError(f"{path} is not a GenBank file: it does not start with a LOCUS line")
    if not genbank and not first.startswith(b">"):
        raise UserError(
            f"{path} is not a FASTA file: line 1 does not start with a '>' header (found {first[:40]!r}); "
            "a DNA corpus is FASTA or GenBank"
        )
    if not genbank and len(lines) > 1:
        seq = lines[1].decode("utf-8", errors="replace")
        bad = _INVALID_DNA.search(seq)
        if bad:
            record = first[1:].decode("utf-8", errors="replace").split(" ")[0]
            raise UserError(
                f"{path}: record '{record}' (line 2) holds {bad.group()!r}, which is not DNA (A C G T N and "
                "the IUPAC codes); a genomic corpus is nucleotide FASTA"
            )


def _check_options(fmt: str, options: Mapping[str, Any]) -> None:
    valid = _OPTIONS[fmt]
    for key in options:
        if key not in valid:
            raise UserError(f"unknown option '{key}' for corpus format '{fmt}'{did_you_mean(key, valid)}")


# --------------------------------------------------------------------------- text


def _read_text_file(path: Path, field: str) -> Iterator[str]:
    jsonl = _suffix(path) == ".jsonl"
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                if not jsonl:
                    yield line
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(
                        f"{path}:{lineno}: malformed JSON line ({exc.msg}); each line must be one JSON object"
                    ) from None
                if not isinstance(obj, dict) or field not in obj:
                    keys = ", ".join(obj) if isinstance(obj, dict) else type(obj).__name__
                    raise UserError(
                        f"{path}:{lineno}: no field '{field}' (found: {keys}); "
                        "set the corpus option field=NAME"
                    )
                text = obj[field]
                if not isinstance(text, str):
                    raise UserError(
                        f"{path}:{lineno}: field '{field}' must be a string, got {type(text).__name__}"
                    )
                if text.strip():
                    yield text.strip()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:  # e.g. a truncated or fake .gz
        raise UserError(f"cannot read {path}: {exc}") from None


_OTHER_DUMP_TABLES = ("comments", "users", "badges", "votes", "posthistory", "postlinks", "tags")


def _stackexchange_docs(files: Sequence[Path], options: Mapping[str, Any]) -> Iterator[str]:
    from zoo.stackexchange import read_posts

    comments = options.get("comments", False)
    if not isinstance(comments, bool):
        raise UserError(f"corpus option comments must be true or false, got {comments!r}")
    for f in files:
        if _suffix(f) == ".xml":
            if f.stem.lower() not in _OTHER_DUMP_TABLES:  # a dump folder: read its posts only
                yield from read_posts(f, comments=comments)
        else:
            yield from _read_text_file(f, options.get("field", "text"))


# --------------------------------------------------------------------------- fasta / genbank


def _records(path: Path) -> Iterator[tuple[str, str]]:
    """(record id, raw sequence) for each FASTA/GenBank record, streamed with biopython. FASTA goes
    through `SimpleFastaParser`, which hands each sequence over as the one str it joins from the lines
    (`SeqIO.parse` would build a `Seq` and then a second copy for `str()`)."""
    from Bio import SeqIO
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    fmt = "genbank" if _suffix(path) in GENBANK_SUFFIXES else "fasta"
    count = 0
    try:
        with _open_text(path) as handle:
            if fmt == "fasta":
                records = (
                    (title.split(None, 1)[0] if title else "", seq)
                    for title, seq in SimpleFastaParser(handle)
                )
            else:
                records = _genbank_sequences(SeqIO.parse(handle, fmt), path)
            for record_id, seq in records:
                count += 1
                yield record_id, seq
        if count == 0 and _head(path).strip():
            raise UserError(
                f"{path} holds text but no {fmt} record (a GenBank record runs from LOCUS through ORIGIN "
                "to '//'; a FASTA record starts with '>')"
            )
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a text {fmt} file ({exc.reason} at byte {exc.start})") from None
    except UserError:
        raise
    except ValueError as exc:  # biopython's report of a malformed file; its first paragraph says what
        reason = " ".join(str(exc).split("\n\n")[0].split())
        raise UserError(
            f"{path} is not a valid {fmt} file ({reason}); a FASTA file starts with a '>' header line"
        ) from None
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def _genbank_sequences(records: Iterable[Any], path: Path) -> Iterator[tuple[str, str]]:
    from Bio.Seq import UndefinedSequenceError

    for record in records:
        try:
            yield record.id, str(record.seq)
        except UndefinedSequenceError:
            raise UserError(
                f"genbank record '{record.id}' in {path} has no sequence (no ORIGIN section)"
            ) from None


def check_dna(seq: str, record_id: str, path: Path | str) -> None:
    """A UserError naming record and position when `seq` holds a letter that is not DNA (no copy is made)."""
    bad = _INVALID_DNA.search(seq)
    if bad:
        raise UserError(
            f"invalid character {bad.group()!r} at position {bad.start() + 1} of record '{record_id}' "
            f"in {path}: DNA may only hold A C G T N and the IUPAC codes {' '.join(IUPAC_CODES)} "
            "(either case); fix or drop the record"
        )


def normalise_dna(seq: str, iupac: str = "map_to_n") -> str:
    """Uppercase; IUPAC codes -> N unless iupac='keep'."""
    seq = seq.upper()
    return seq.translate(_TO_N) if iupac == "map_to_n" else seq


def clean_dna(seq: str, record_id: str, path: Path | str, iupac: str = "map_to_n") -> str:
    """Validate and normalise one DNA sequence: uppercase, IUPAC codes -> N unless iupac='keep'."""
    check_dna(seq, record_id, path)
    return normalise_dna(seq, iupac)


def windows(seq: str, window: int, stride: int) -> Iterator[str]:
    """Windows of `window` bases starting every `stride` bases; the last one may be shorter and
    ends at the sequence end (no window is emitted that lies entirely inside the previous one)."""
    for start in range(0, len(seq), stride):
        yield seq[start : start + window]
        if start + window >= len(seq):
            break


def _read_fasta_file(path: Path, window: int, stride: int, iupac: str, max_n: float) -> Iterator[str]:
    """Windows of each record. A chromosome is held once, as the parser's string: it is checked in place
    and each window is normalised on its own (no uppercased or translated copy of the whole record)."""
    for record_id, raw in _records(path):
        check_dna(raw, record_id, path)
        for chunk in windows(raw, window, stride):
            chunk = normalise_dna(chunk, iupac)
            if chunk.count("N") <= max_n * len(chunk):
                yield chunk


def _fasta_options(options: Mapping[str, Any]) -> tuple[int, int, str, float]:
    window = options.get("window", 2048)
    stride = options.get("stride", window)
    iupac = options.get("iupac", "map_to_n")
    max_n = options.get("max_n_fraction", 0.5)
    for key, value in (("window", window), ("stride", stride)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"corpus option {key} must be a positive integer (bases), got {value!r}")
    if stride > window:
        raise UserError(
            f"corpus option stride ({stride}) must not exceed window ({window}): bases would be skipped"
        )
    if iupac not in ("map_to_n", "keep"):
        raise UserError(f"corpus option iupac must be 'map_to_n' or 'keep', got {iupac!r}")
    if not isinstance(max_n, (int, float)) or not 0 <= max_n <= 1:
        raise UserError(f"corpus option max_n_fraction must be a number from 0 to 1, got {max_n!r}")
    return window, stride, iupac, float(max_n)


# --------------------------------------------------------------------------- dispatch


def _third_party(fmt: str) -> Callable[..., Iterable[str]]:
    module_name, _, func_name = fmt.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise UserError(
            f"cannot load corpus reader '{fmt}': {exc} (expected 'package.module:function')"
        ) from None
    if not callable(func):
        raise UserError(f"corpus reader '{fmt}' is not callable")
    return func


def _non_empty(docs: Iterable[str], paths: Sequence[Path | str]) -> Iterator[str]:
    count = 0
    for doc in docs:
        if not isinstance(doc, str):
            raise UserError(f"corpus reader yielded {type(doc).__name__}, expected str documents")
        count += 1
        yield doc
    if count == 0:
        where = ", ".join(str(p) for p in paths)
        raise UserError(f"no documents in {where} (empty files, or every window filtered out)")


def read_corpus(spec: CorpusSpec, paths: Sequence[Path | str]) -> Iterator[str]:
    """Stream the documents of `paths` (files or directories) read as `spec` says.

    Paths, format and options are checked eagerly (before the first document); an empty corpus
    raises UserError("no documents in …") when the stream ends.
    """
    fmt, options = spec.format, dict(spec.options)
    if ":" in fmt:
        func = _third_party(fmt)
        for raw in paths:
            if not Path(raw).exists():
                raise UserError(f"corpus file {raw} does not exist")
        if not paths:
            raise UserError("no corpus path given (pass --corpus FILE_OR_DIR)")
        docs: Iterable[str] = (doc for raw in paths for doc in func(Path(raw), **options))
        return _non_empty(docs, paths)
    if fmt not in BUILTIN_FORMATS:
        raise UserError(
            f"unknown corpus format '{fmt}'{did_you_mean(fmt, BUILTIN_FORMATS)} "
            "(or 'package.module:function')"
        )
    _check_options(fmt, options)
    files: list[Path] = []  # sniffed below: the text and FASTA readers; the others check their own format
    if fmt == "text":
        field = options.get("field", "text")
        files = _expand(paths, TEXT_SUFFIXES)
        docs = (doc for f in files for doc in _read_text_file(f, field))
    elif fmt == "stackexchange":
        docs = _stackexchange_docs(_expand(paths, (".xml", *TEXT_SUFFIXES)), options)
    elif fmt == "urls":
        from zoo.urls import read_urls

        column = str(options.get("column", "url"))
        docs = (doc for f in _expand(paths, (".txt", ".csv")) for doc in read_urls(f, column))
    else:
        window, stride, iupac, max_n = _fasta_options(options)
        files = _expand(paths, FASTA_SUFFIXES + GENBANK_SUFFIXES)
        docs = (doc for f in files for doc in _read_fasta_file(f, window, stride, iupac, max_n))
    for f in files:
        sniff(f, fmt)
    return _non_empty(docs, paths)


def count_documents(spec: CorpusSpec, paths: Sequence[Path | str]) -> int:
    """Number of documents `read_corpus` yields (reads everything once)."""
    return sum(1 for _ in read_corpus(spec, paths))
