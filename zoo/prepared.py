"""Prepared pretraining data: a corpus tokenized once and packed into blocks, memory-mapped from disk.

Built with HF `datasets`: the domain's corpus reader feeds `Dataset.from_generator`, tokenization runs
through `Dataset.map(batched=True, num_proc=data.num_proc)`, and `zoo.packing.pack_documents` packs the
tokenized documents into blocks of `seq_len` (input_ids, position_ids, doc_ids, word_starts: exactly
the blocks the objectives collate). The folder (`save_to_disk`, Arrow) holds

    zoo-prepared.json   format version, cache key, counts, the size of every data file
    train/ eval/        the packed blocks (every k-th document of the corpus is held out for eval)
    tokenizer/          the tokenizer the ids belong to

A folder is written under a temp name and renamed when complete, so a half-built one is never read; a
truncated or foreign-version one is refused with a UserError that says how to rebuild it.

The automatic cache lives in `$ZOO_HOME/cache/prepared/<key>` (or `data.cache_dir`); the key covers the
corpus files (paths, sizes, mtimes), the reader and its options, the tokenizer's serialized JSON, seq_len,
the eval split, the document cap, the packing policy and `CACHE_FORMAT`. A changed corpus or tokenizer
therefore gets a new folder: a stale cache is never reused.

`stream_blocks` is the same pipeline without the disk (`data.streaming=true`): documents are read,
tokenized and packed on the fly, in the same order, so a streamed corpus yields the cached blocks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.domain import CorpusSpec
from zoo.errors import UserError
from zoo.packing import BLOCK_KEYS, pack_documents, window_documents

CACHE_FORMAT = 1
"""Bump when the folder layout or the block contents change: older folders are then refused."""
META = "zoo-prepared.json"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# ----------------------------------------------------------------------------------- cache folders


@contextlib.contextmanager
def atomic_folder(dest: Path) -> Iterator[Path]:
    """A temp folder beside `dest`, renamed to `dest` when the block completes and deleted if it fails: `dest`
    is whole or absent. When another process completed `dest` first, its folder is kept."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        try:
            tmp.rename(dest)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_folder(folder: Path, make: Callable[[Path], None]) -> Path:
    """`folder`, made by `make(tmp)` first if it does not exist yet."""
    if not folder.is_dir():
        with atomic_folder(folder) as tmp:
            make(tmp)
    return folder


def cached_rows(folder: Path, make: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Encoded rows (plain lists and numbers, as the task kinds make them) kept in `folder` as Arrow:
    made by `make()` the first time, read back identical afterwards (fine-tuning's tokenize-once cache).
    A folder that does not read back whole (damaged, another format) is rebuilt: it only ever holds what
    `make()` recomputes, and the rows are read into memory, so no other reader depends on the files."""
    from datasets import Dataset, load_from_disk

    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("format") == CACHE_FORMAT:
            rows = load_from_disk(str(folder / "rows")).to_list() if meta["rows"] else []
            if len(rows) == meta["rows"]:
                return rows
    except (OSError, ValueError, KeyError, IndexError):  # absent or damaged: (re)build below
        pass
    shutil.rmtree(folder, ignore_errors=True)
    rows = make()
    with atomic_folder(folder) as tmp, _progress_bars(False):
        if rows:
            Dataset.from_list(rows).save_to_disk(str(tmp / "rows"))
        (tmp / META).write_text(json.dumps({"format": CACHE_FORMAT, "rows": len(rows)}))
    return rows


# ------------------------------------------------------------------------------------------- keys


def corpus_fingerprint(paths: Sequence[Path]) -> list[list[Any]]:
    """(path, size, mtime) of every file the corpus paths stand for (a folder: its files, recursively)."""
    rows: list[list[Any]] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                raise UserError(
                    f"corpus file {f} disappeared while its prepared data was being built; run again"
                ) from None
            rows.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return rows


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's serialized JSON and its special tokens (what the ids depend on)."""
    state = tokenizer.backend_tokenizer.to_str() + json.dumps(tokenizer.special_tokens_map, sort_keys=True)
    return hashlib.sha256(state.encode()).hexdigest()


def digest(obj: Any) -> str:
    """A short stable hash of JSON-able `obj` (a cache key)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Recipe:
    """Everything the blocks depend on (the cache key) plus how to build them (not in the key)."""

    spec: CorpusSpec
    paths: tuple[Path, ...]
    seq_len: int
    eval_every: int
    """Every k-th document (k-1, 2k-1, …) goes to eval; 0 = none."""
    max_documents: int | None
    packs: bool = True
    """Several documents per block (the model isolates them by the mask); False: one document window per
    block (`zoo.packing.window_documents`, for attention that takes only a [B, L] mask, e.g. Longformer)."""

    def key(self, tokenizer: Any) -> str:
        return digest(
            {
                "format": CACHE_FORMAT,
                "reader": [self.spec.format, dict(self.spec.options)],
                "corpus": corpus_fingerprint(list(self.paths)),
                "tokenizer": tokenizer_fingerprint(tokenizer),
                "seq_len": self.seq_len,
                "eval_every": self.eval_every,
                "max_documents": self.max_documents,
                "packing": _PACKING[self.packs],
            }
        )

    def blocks(self, docs: Iterable[Mapping[str, Any]], pad_id: int) -> Iterator[dict[str, list]]:
        """Tokenized documents → blocks of `seq_len`, by this recipe's packing policy."""
        cut = pack_documents if self.packs else window_documents
        return cut(docs, self.seq_len, pad_id=pad_id)


_PACKING = {
    True: "concatenate-then-cut, pieces restart positions, last block padded",
    False: "one document per block, cut into windows, each last window padded",
}


# --------------------------------------------------------------------------------------- documents


def encode_texts(tokenizer: Any, texts: list[str]) -> dict[str, list]:
    """Token ids and word-start flags of a batch of documents (special tokens added, never truncated)."""
    from zoo.tokenizer import word_start_mask

    enc = tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False)
    ids = enc["input_ids"]
    return {"input_ids": ids, "word_starts": [word_start_mask(tokenizer, x) for x in ids]}


def read_documents(recipe: Recipe) -> Iterator[dict[str, Any]]:
    """{"text", "eval"} for each document of the corpus, up to `max_documents`."""
    from zoo.corpus import read_corpus

    every = recipe.eval_every
    for i, text in enumerate(read_corpus(recipe.spec, recipe.paths)):
        if recipe.max_documents is not None and i >= recipe.max_documents:
            return
        yield {"text": text, "eval": bool(every) and i % every == every - 1}


def stream_blocks(recipe: Recipe, tokenizer: Any, split: str, batch: int = 256) -> Iterator[dict[str, list]]:
    """The blocks of one split, read, tokenized and packed on the fly (what the cache stores, in order)."""
    want_eval = split == "eval"

    def tokenized() -> Iterator[dict[str, list]]:
        texts: list[str] = []
        for doc in read_documents(recipe):
            if doc["eval"] == want_eval:
                texts.append(doc["text"])
            if len(texts) == batch:
                yield from _rows(encode_texts(tokenizer, texts))
                texts = []
        if texts:
            yield from _rows(encode_texts(tokenizer, texts))

    return recipe.blocks(tokenized(), tokenizer.pad_token_id)


class BlockStream:
    """Global batches of an endless stream of the train blocks: the corpus pass after pass, each pass
    shuffled through a buffer (`IterableDataset.shuffle`, reseeded per pass by `set_epoch`).

    A stream has no random access, so `batch(step)` is a pure function of (seed, step) by replay: asked
    for the step after the last one it continues; asked for any other (a resumed run) it restarts the
    stream and skips exactly the `step × batch_size` blocks consumed before it."""

    def __init__(self, recipe: Recipe, tokenizer: Any, batch_size: int, seed: int, buffer: int) -> None:
        self.recipe, self.tokenizer = recipe, tokenizer
        self.batch_size, self.seed, self.buffer = batch_size, seed, buffer
        self._next_step: int | None = None
        self._blocks: Iterator[dict[str, list]] = iter(())

    def batch(self, step: int) -> list[dict[str, list]]:
        if step != self._next_step:
            self._blocks = itertools.islice(self._endless(), step * self.batch_size, None)
        self._next_step = step + 1
        return list(itertools.islice(self._blocks, self.batch_size))

    def _endless(self) -> Iterator[dict[str, list]]:
        from datasets import IterableDataset

        kwargs = {"recipe": self.recipe, "tokenizer": self.tokenizer, "split": "train"}
        shuffled = IterableDataset.from_generator(stream_blocks, gen_kwargs=kwargs).shuffle(
            seed=self.seed, buffer_size=self.buffer
        )
        for epoch in itertools.count():
            shuffled.set_epoch(epoch)
            seen = 0
            for block in shuffled:
                seen += 1
                yield {k: block[k] for k in BLOCK_KEYS}
            if not seen:
                raise UserError(
                    "the corpus holds no documents to train on (check --corpus and data.max_documents)"
                )


def _rows(columns: Mapping[str, list]) -> Iterator[dict[str, list]]:
    keys = list(columns)
    for values in zip(*(columns[k] for k in keys)):
        yield dict(zip(keys, values))


# ------------------------------------------------------------------------------------------- blocks


class Blocks(Sequence[dict[str, list]]):
    """Packed blocks in a memory-mapped Arrow table, read as the lists `zoo.packing` makes."""

    def __init__(self, dataset: Any = None) -> None:
        self.dataset = dataset.with_format("numpy") if dataset is not None else None

    def __len__(self) -> int:
        return 0 if self.dataset is None else len(self.dataset)

    def __getitem__(self, index: Any) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        return self.take([index])[0]

    def take(self, indices: Sequence[int]) -> list[dict[str, list]]:
        """The blocks at `indices`, in that order (one Arrow read for all)."""
        if not len(indices):
            return []
        cols = self.dataset[list(indices)]
        return [{k: cols[k][i].tolist() for k in BLOCK_KEYS} for i in range(len(indices))]


@dataclass
class Prepared:
    folder: Path
    train: Blocks
    eval: Blocks
    meta: dict[str, Any]

    @property
    def documents(self) -> int:
        return int(self.meta["documents"])

    @property
    def tokens(self) -> int:
        return int(self.meta["train_tokens"])


def _block_features(seq_len: int) -> Any:
    from datasets import Features, Sequence, Value

    ints = Sequence(Value("int32"), length=seq_len)
    return Features(
        {
            "input_ids": ints,
            "position_ids": ints,
            "doc_ids": ints,
            "word_starts": Sequence(Value("bool"), length=seq_len),
        }
    )


# -------------------------------------------------------------------------------------------- build


def prepared(
    recipe: Recipe, tokenizer: Any, cache_dir: Path, *, num_proc: int = 1, progress: bool = False
) -> Prepared:
    """The recipe's blocks from `cache_dir/<key>`, built first if absent (see `zoo.pretrain.prepare_data`)."""
    key = recipe.key(tokenizer)
    folder = cache_dir / key
    if not folder.exists():
        build(recipe, tokenizer, folder, key=key, num_proc=num_proc, progress=progress)
    return load(folder)


@contextlib.contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    import datasets

    was = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if show else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()


def build(
    recipe: Recipe,
    tokenizer: Any,
    dest: Path,
    *,
    key: str | None = None,
    num_proc: int = 1,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tokenize and pack the corpus into `dest` (absent or empty), whole or not at all. Returns the meta."""
    key = key or recipe.key(tokenizer)
    before = corpus_fingerprint(list(recipe.paths))
    start = time.perf_counter()
    with atomic_folder(dest) as tmp:
        with _build_errors(dest, recipe.paths), _progress_bars(progress):
            meta = _write(recipe, tokenizer, tmp, key, num_proc)
        after = corpus_fingerprint(list(recipe.paths))
        if after != before:
            changed = [a[0] for a, b in zip(before, after) if a != b] or ["list"]
            raise UserError(
                f"corpus file {changed[0]} changed while its prepared data was being built; the half-built cache "
                "was discarded: run again once the corpus is complete"
            )
        meta["seconds"] = round(time.perf_counter() - start, 3)
        (tmp / META).write_text(json.dumps(meta, indent=1))
    if report is not None:
        s = meta["seconds"]
        report(
            f"{meta['documents']:,} documents, {meta['train_tokens'] + meta['eval_tokens']:,} tokens → "
            f"{meta['train_blocks']:,} train + {meta['eval_blocks']:,} eval blocks of {meta['seq_len']} "
            f"in {s:.1f} s ({meta['documents'] / s:,.0f} docs/s, "
            f"{(meta['train_tokens'] + meta['eval_tokens']) / s:,.0f} tokens/s) → {dest}"
        )
    return meta


def _write(recipe: Recipe, tokenizer: Any, tmp: Path, key: str, num_proc: int) -> dict[str, Any]:
    from datasets import Dataset, Features, Value

    work = tmp / "work"  # datasets' intermediate Arrow files (documents, tokens), deleted once packed
    docs = Dataset.from_generator(
        read_documents,
        features=Features({"text": Value("string"), "eval": Value("bool")}),
        gen_kwargs={"recipe": recipe},
        cache_dir=str(work),
        fingerprint=f"{key}-docs",
        split="documents",  # what the progress bar calls them
    )
    if num_proc > 1:  # forked workers: the tokenizer's own threads would only fight them
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    tokens = docs.map(
        _encode_column,
        batched=True,
        batch_size=256,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=["text"],
        fn_kwargs={"tokenizer": tokenizer},
        cache_file_name=str(work / "tokens.arrow"),
        new_fingerprint=f"{key}-tokens",
        desc="tokenize",
    )
    lengths = tokens.data.column("length").to_numpy()  # one int per document, not the tokens
    held_out = tokens.data.column("eval").to_numpy(zero_copy_only=False)
    if not (~held_out).any():
        raise UserError("the corpus holds no documents to train on (check --corpus and data.max_documents)")
    counts: dict[str, int] = {}
    for split in ("train", "eval"):
        if not (held_out if split == "eval" else ~held_out).any():  # from_generator refuses to yield nothing
            empty = {k: [] for k in BLOCK_KEYS}
            blocks = Dataset.from_dict(empty, features=_block_features(recipe.seq_len))
        else:
            blocks = Dataset.from_generator(
                _packed,
                features=_block_features(recipe.seq_len),
                gen_kwargs={
                    "tokens": tokens,
                    "want_eval": split == "eval",
                    "recipe": recipe,
                    "pad": tokenizer.pad_token_id,
                },
                cache_dir=str(work),
                fingerprint=f"{key}-{split}",
                split=split,
            )
        blocks.save_to_disk(str(tmp / split))
        counts[split] = len(blocks)
        del blocks
    del docs, tokens
    shutil.rmtree(work)
    tokenizer.save_pretrained(tmp / "tokenizer")
    import zoo

    return {
        "format": CACHE_FORMAT,
        "zoo_version": zoo.__version__,
        "key": key,
        "reader": [recipe.spec.format, dict(recipe.spec.options)],
        "corpus": [str(p) for p in recipe.paths],
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "seq_len": recipe.seq_len,
        "eval_every": recipe.eval_every,
        "packs": recipe.packs,
        "documents": int(len(lengths)),
        "train_tokens": int(lengths[~held_out].sum()),
        "eval_tokens": int(lengths[held_out].sum()),
        "train_blocks": counts["train"],
        "eval_blocks": counts["eval"],
        "files": {
            str(p.relative_to(tmp)): p.stat().st_size
            for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.parent.name in ("train", "eval")
        },
    }


def _encode_column(batch: Mapping[str, list], tokenizer: Any) -> dict[str, list]:
    out = encode_texts(tokenizer, batch["text"])
    out["length"] = [len(x) for x in out["input_ids"]]
    return out


def _packed(tokens: Any, want_eval: bool, recipe: Recipe, pad: int) -> Iterator[dict[str, list]]:
    def docs() -> Iterator[dict[str, list]]:
        for chunk in tokens.iter(batch_size=1024):
            for held_out, ids, starts in zip(chunk["eval"], chunk["input_ids"], chunk["word_starts"]):
                if held_out == want_eval:
                    yield {"input_ids": ids, "word_starts": starts}

    return recipe.blocks(docs(), pad)


@contextlib.contextmanager
def _build_errors(dest: Path, corpus: Sequence[Path]) -> Iterator[None]:
    """datasets wraps what a generator raises: give back the user's error; a full disk names the cache."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is one of ours underneath
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, UserError | OSError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, FileNotFoundError) and _inside(cause.filename, corpus):
            raise UserError(
                f"corpus file {cause.filename} disappeared while its prepared data was being built; the "
                "half-built cache was discarded: run again once the corpus is complete"
            ) from None
        if isinstance(cause, OSError) and cause.errno in _DISK_FULL:
            raise UserError(
                f"no space left to write the prepared data {dest} ({os.strerror(cause.errno)}); nothing was "
                "kept. Free space there, or point data.cache_dir (or --out) at a larger disk"
            ) from None
        raise


def _inside(name: Any, paths: Sequence[Path]) -> bool:
    if name is None:
        return False
    target = Path(name).absolute()
    return any(target == p.absolute() or p.absolute() in target.parents for p in paths)


# --------------------------------------------------------------------------------------------- load


def load(folder: Path) -> Prepared:
    """A prepared folder, checked whole (format version, every data file at its recorded size)."""
    from datasets import load_from_disk

    rebuild = "build it again with `zoo data prepare` (an automatic cache folder can simply be deleted)"
    if not folder.is_dir():
        raise UserError(f"prepared data '{folder}' does not exist; build it with `zoo data prepare`")
    try:
        meta = json.loads((folder / META).read_text())
    except FileNotFoundError:
        raise UserError(
            f"'{folder}' is not a zoo prepared-data folder (no {META}): it is incomplete or was not written "
            f"by `zoo data prepare`; {rebuild}"
        ) from None
    except ValueError:
        raise UserError(f"prepared data '{folder}': {META} is damaged; {rebuild}") from None
    if meta.get("format") != CACHE_FORMAT:
        raise UserError(
            f"prepared data '{folder}' was written in cache format {meta.get('format')} (zoo "
            f"{meta.get('zoo_version', '?')}); this zoo reads format {CACHE_FORMAT}: {rebuild}"
        )
    for rel, size in meta["files"].items():
        path = folder / rel
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            found = "missing" if actual is None else f"{actual:,} bytes, expected {size:,}"
            raise UserError(f"prepared data '{folder}' is truncated ({rel}: {found}); {rebuild}")
    train, held = (  # an empty split is saved without data files, which load_from_disk cannot read
        Blocks(load_from_disk(str(folder / split)) if meta[f"{split}_blocks"] else None)
        for split in ("train", "eval")
    )
    return Prepared(folder, train, held, meta)
