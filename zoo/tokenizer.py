"""Tokenizer recipes (declarative YAML files in tokenizers/) and training them with HF `tokenizers`.

A recipe says *what* tokenizer a domain wants; `train_tokenizer` turns it into a
`transformers.PreTrainedTokenizerFast` (save it with `tok.save_pretrained(dir)`).
Importing this module is cheap: `tokenizers`/`transformers` are imported inside the functions.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.errors import UserError, did_you_mean

log = logging.getLogger(__name__)

ALGORITHMS = ("wordpiece", "bpe", "unigram", "kmer", "char")
NORMALIZER_STEPS = (
    "bert_clean",
    "nfd",
    "nfc",
    "nfkd",
    "nfkc",
    "strip_accents",
    "lowercase",
    "uppercase",
    "metaspace",
)
PRE_TOKENIZERS = ("bert", "whitespace", "metaspace", "byte_level", "none", "kmer", "char", "regex")
SPACE_MARKER = "▁"  # SentencePiece's visible space (U+2581)
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))  # SentencePiece byte-fallback pieces
POST_PROCESSORS = ("bert", "bos_eos", "bos", "eos", "none")
SPECIAL_ROLES = ("pad", "unk", "cls", "sep", "mask", "bos", "eos")
IUPAC_POLICIES = ("map_to_n", "keep")
IUPAC_CODES = "RYKMSWBDHV"  # two- and three-base ambiguity codes; N (any base) is kept as is
WORDPIECE_PREFIX = "##"
SENTINEL = "<extra_id_{}>"  # T5's sentinel tokens, numbered from 0


def recipes_dir() -> Path:
    """The folder holding the shipped recipe YAML files.

    A wheel ships them as the resource package `zoo/tokenizer_recipes/` (pyproject maps it to
    tokenizers/); an editable/source install cannot import that namespace, so fall back to the
    repository's `tokenizers/` folder next to the `zoo/` package.
    """
    import zoo

    package = Path(zoo.__file__).resolve().parent
    wheel = package / "tokenizer_recipes"
    return wheel if wheel.is_dir() else package.parent / "tokenizers"


@dataclass(frozen=True)
class TokenizerRecipe:
    """A declarative tokenizer recipe (one YAML file). Validated on construction.

    `special_tokens` maps role (pad/unk/cls/sep/mask/bos/eos) to token text; its order fixes the ids
    (0, 1, …). `normalizer` is an ordered list of steps; `iupac` is the DNA policy for ambiguity codes.
    `k`/`alphabet` only apply to algorithm 'kmer', whose vocabulary is fixed (see `kmer_vocab_size`).
    `atomic_tokens` are added whole and never split or normalised (e.g. de-identification placeholders).
    `byte_fallback` (bpe only): the 256 byte pieces <0x00>..<0xFF> are part of the vocabulary (within
    `vocab_size`), so a character the merges never saw is spelled in UTF-8 bytes instead of <unk>.
    `pattern` (pre_tokenizer 'regex' only): every match is a piece of its own, and so is each run of text
    between matches; merges never cross a piece edge. The normaliser step 'metaspace' is SentencePiece's
    space handling: every space becomes '▁' and one '▁' is prepended, so decoding restores the spaces.
    `placeholders` are (regex, token) pairs applied first by the normaliser, in order: every match becomes
    the token, which is one atomic entry (Clinical-T5's de-identification tags: '[**Name**]' → '[NAME]').
    `sentinel_tokens` = n adds the special tokens '<extra_id_0>' … '<extra_id_{n-1}>' after the
    vocabulary (T5 span corruption), not counted in `vocab_size` (T5: 32,000 + 100).
    """

    name: str
    algorithm: str
    vocab_size: int
    special_tokens: Mapping[str, str]
    summary: str = ""
    normalizer: tuple[str, ...] = ()
    pre_tokenizer: str = "none"
    post_processor: str = "none"
    min_frequency: int = 2
    model_max_length: int = 512
    k: int | None = None
    alphabet: str = "ACGT"
    iupac: str | None = None
    atomic_tokens: tuple[str, ...] = ()
    byte_fallback: bool = False
    pattern: str | None = None
    placeholders: tuple[tuple[str, str], ...] = ()
    sentinel_tokens: int = 0
    source: str = field(default="<recipe>", compare=False)  # where it was loaded from, for messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalizer", tuple(self.normalizer))
        object.__setattr__(self, "atomic_tokens", tuple(self.atomic_tokens))
        object.__setattr__(self, "special_tokens", dict(self.special_tokens))
        object.__setattr__(self, "placeholders", tuple(tuple(p) for p in self.placeholders))
        self._validate()

    def _fail(self, what: str) -> UserError:
        return UserError(f"tokenizer recipe {self.source}: {what}")

    def _choice(self, key: str, value: Any, choices: Sequence[str]) -> None:
        if value not in choices:
            raise self._fail(f"{key} '{value}' is not valid{did_you_mean(str(value), choices)}")

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise self._fail("name must be a non-empty string")
        self._choice("algorithm", self.algorithm, ALGORITHMS)
        for step in self.normalizer:
            self._choice("normalizer step", step, NORMALIZER_STEPS)
        self._choice("pre_tokenizer", self.pre_tokenizer, PRE_TOKENIZERS)
        self._choice("post_processor", self.post_processor, POST_PROCESSORS)
        if self.iupac is not None:
            self._choice("iupac", self.iupac, IUPAC_POLICIES)
        for role, token in self.special_tokens.items():
            self._choice("special_tokens role", role, SPECIAL_ROLES)
            if not isinstance(token, str) or not token:
                raise self._fail(f"special token for role '{role}' must be a non-empty string")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise self._fail("special_tokens must be distinct strings")
        for key in ("vocab_size", "min_frequency", "model_max_length"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self._fail(f"{key} must be a positive integer, got {value!r}")
        needs = {
            "bert": ("cls", "sep"),
            "bos_eos": ("bos", "eos"),
            "bos": ("bos",),
            "eos": ("eos",),
            "none": (),
        }
        missing = [r for r in needs[self.post_processor] if r not in self.special_tokens]
        if self.algorithm in ("wordpiece", "kmer", "char", "unigram") and "unk" not in self.special_tokens:
            missing.append("unk")
        if missing:
            raise self._fail(f"special_tokens needs the role(s) {', '.join(missing)} for this recipe")
        # Each algorithm fixes how pieces are re-joined on decoding; refuse combinations that cannot decode.
        if self.algorithm == "kmer":
            if not isinstance(self.k, int) or isinstance(self.k, bool) or not 1 <= self.k <= 8:
                raise self._fail(f"k must be an integer from 1 to 8 for algorithm 'kmer', got {self.k!r}")
            if self.pre_tokenizer != "kmer":
                raise self._fail("algorithm 'kmer' needs pre_tokenizer: kmer")
            if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet) or "N" in self.alphabet:
                raise self._fail(f"alphabet must be distinct letters without N, got {self.alphabet!r}")
            if self.vocab_size != self.kmer_vocab_size:
                raise self._fail(
                    f"vocab_size of a {self.k}-mer recipe is fixed: "
                    f"{len(self.special_tokens)} special tokens + "
                    f"{len(self.alphabet) + 1} single bases + {len(self.alphabet)}^{self.k} k-mers = "
                    f"{self.kmer_vocab_size}; set vocab_size: {self.kmer_vocab_size}"
                )
        elif self.k is not None:
            raise self._fail("k only applies to algorithm 'kmer'")
        elif self.algorithm == "char":
            if self.pre_tokenizer != "char":
                raise self._fail("algorithm 'char' needs pre_tokenizer: char")
        elif self.pre_tokenizer in ("kmer", "char"):
            raise self._fail(
                f"pre_tokenizer '{self.pre_tokenizer}' only goes with algorithm '{self.pre_tokenizer}'"
            )
        elif self.algorithm == "unigram" and self.pre_tokenizer in ("bert", "whitespace"):
            raise self._fail(
                "algorithm 'unigram' needs pre_tokenizer metaspace, byte_level or none "
                "(it cannot mark word pieces)"
            )
        elif self.algorithm == "wordpiece" and self.pre_tokenizer not in ("bert", "whitespace"):
            raise self._fail("algorithm 'wordpiece' needs pre_tokenizer bert or whitespace")
        self._validate_pieces()

    def _validate_pieces(self) -> None:
        if not isinstance(self.byte_fallback, bool):
            raise self._fail(f"byte_fallback must be true or false, got {self.byte_fallback!r}")
        if self.byte_fallback and self.algorithm != "bpe":
            raise self._fail("byte_fallback only applies to algorithm 'bpe'")
        if self.byte_fallback and self.vocab_size <= len(BYTE_TOKENS) + len(self.special_tokens):
            raise self._fail(f"vocab_size must exceed the {len(BYTE_TOKENS)} byte pieces of byte_fallback")
        if (self.pre_tokenizer == "regex") != (self.pattern is not None):
            raise self._fail(
                "pattern goes with pre_tokenizer: regex, and pre_tokenizer: regex needs a pattern"
            )
        if self.pattern is not None:
            from tokenizers import Regex  # Oniguruma syntax (\p{L} …), which Python's re lacks

            try:
                Regex(self.pattern)
            except Exception as exc:
                raise self._fail(f"pattern {self.pattern!r} is not a regular expression ({exc})") from None
        self._validate_placeholders()
        if "metaspace" in self.normalizer and self.pre_tokenizer in ("bert", "whitespace", "metaspace"):
            raise self._fail(f"normalizer step metaspace cannot go with pre_tokenizer {self.pre_tokenizer}")

    def _validate_placeholders(self) -> None:
        from tokenizers import Regex

        count = self.sentinel_tokens
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1000:
            raise self._fail(f"sentinel_tokens must be an integer from 0 to 1000, got {count!r}")
        for pair in self.placeholders:
            if len(pair) != 2 or not all(isinstance(x, str) and x for x in pair):
                raise self._fail(
                    f"each placeholder is a [regex, token] pair of non-empty strings, got {pair!r}"
                )
            try:
                Regex(pair[0])
            except Exception as exc:
                raise self._fail(
                    f"placeholder pattern {pair[0]!r} is not a regular expression ({exc})"
                ) from None

    @property
    def sentinels(self) -> list[str]:
        """T5's sentinel tokens '<extra_id_0>' … (none unless `sentinel_tokens` > 0)."""
        return [SENTINEL.format(i) for i in range(self.sentinel_tokens)]

    @property
    def kmer_vocab_size(self) -> int:
        """specials + single bases (alphabet + N) + len(alphabet)**k; only meaningful for 'kmer'."""
        return len(self.special_tokens) + len(self.alphabet) + 1 + len(self.alphabet) ** (self.k or 0)

    def special(self, role: str) -> str | None:
        return self.special_tokens.get(role)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<recipe>") -> TokenizerRecipe:
        """Strict: unknown keys and missing required keys are UserErrors naming `source`."""
        if not isinstance(data, Mapping):
            raise UserError(
                f"tokenizer recipe {source}: expected a mapping of fields, got {type(data).__name__}"
            )
        valid = [f.name for f in fields(cls) if f.name != "source"]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            hint = did_you_mean(str(unknown[0]), valid)
            raise UserError(
                f"tokenizer recipe {source}: unknown key(s) {', '.join(map(str, unknown))}{hint}; "
                f"valid keys: {', '.join(valid)}"
            )
        required = ("name", "algorithm", "vocab_size", "special_tokens")
        missing = [k for k in required if k not in data]
        if missing:
            raise UserError(f"tokenizer recipe {source}: missing required key(s) {', '.join(missing)}")
        kwargs = dict(data)
        placeholders = kwargs.get("placeholders") or ()
        if not isinstance(placeholders, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) for p in placeholders
        ):
            raise UserError(f"tokenizer recipe {source}: placeholders must be a list of [regex, token] pairs")
        kwargs["placeholders"] = tuple(tuple(p) for p in placeholders)
        for key in ("normalizer", "atomic_tokens"):
            value = kwargs.get(key) or ()
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise UserError(f"tokenizer recipe {source}: {key} must be a list, got {value!r}")
            kwargs[key] = tuple(value)
        if not isinstance(kwargs["special_tokens"], Mapping):
            raise UserError(
                f"tokenizer recipe {source}: special_tokens must map role to token, e.g. pad: '[PAD]'"
            )
        return cls(**kwargs, source=source)


def list_recipes() -> list[str]:
    """Names (file stems) of the shipped recipes."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> TokenizerRecipe:
    """A shipped recipe by name (file stem in `recipes_dir()`), or any recipe YAML file by path."""
    text = str(name_or_path)
    as_path = Path(text)
    if as_path.suffix in (".yaml", ".yml") or as_path.parent != Path("."):
        path = as_path
        if not path.is_file():
            raise UserError(
                f"tokenizer recipe file {path} does not exist (give a recipe name or an existing .yaml path)"
            )
    else:
        path = recipes_dir() / f"{text}.yaml"
        if not path.is_file():
            raise UserError(f"unknown tokenizer recipe '{text}'{did_you_mean(text, list_recipes())}")
    from zoo.files import read_yaml

    return TokenizerRecipe.from_dict(read_yaml(path, "tokenizer recipe"), source=str(path))


# --------------------------------------------------------------------------- building the tokenizer


def _normalizer(recipe: TokenizerRecipe) -> Any:
    from tokenizers import Regex
    from tokenizers import normalizers as n

    # Placeholders first, so the later steps never see (or split) what a placeholder replaces.
    steps: list[Any] = [n.Replace(Regex(pattern), token) for pattern, token in recipe.placeholders]
    for step in recipe.normalizer:
        if step == "metaspace":
            steps.extend([n.Prepend(SPACE_MARKER), n.Replace(" ", SPACE_MARKER)])
        elif step == "bert_clean":
            steps.append(
                n.BertNormalizer(
                    clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
                )
            )
        elif step == "uppercase":
            # `tokenizers` has no Uppercase normaliser; per-letter Replace serialises into tokenizer.json.
            steps.extend(n.Replace(c, c.upper()) for c in "abcdefghijklmnopqrstuvwxyz")
        else:
            steps.append(
                {
                    "nfd": n.NFD,
                    "nfc": n.NFC,
                    "nfkd": n.NFKD,
                    "nfkc": n.NFKC,
                    "strip_accents": n.StripAccents,
                    "lowercase": n.Lowercase,
                }[step]()
            )
    if recipe.iupac == "map_to_n":
        steps.extend(n.Replace(c, "N") for c in IUPAC_CODES)
        steps.extend(n.Replace(c.lower(), "n") for c in IUPAC_CODES)  # in case the recipe keeps case
    return n.Sequence(steps) if steps else None


def _pre_tokenizer(recipe: TokenizerRecipe) -> Any:
    from tokenizers import Regex
    from tokenizers import pre_tokenizers as p

    kind = recipe.pre_tokenizer
    if kind == "kmer":
        # Leftmost-first regex: a full k-mer of the alphabet, else one character (N, a short tail, junk).
        return p.Split(Regex(f"[{recipe.alphabet}]{{{recipe.k}}}|[\\s\\S]"), behavior="isolated")
    if kind == "char":
        return p.Split(Regex(r"[\s\S]"), behavior="isolated")
    if kind == "regex":
        return p.Split(Regex(recipe.pattern), behavior="isolated")
    return {
        "bert": p.BertPreTokenizer,
        "whitespace": p.Whitespace,
        "metaspace": lambda: p.Metaspace(replacement="▁", prepend_scheme="always"),
        "byte_level": lambda: p.ByteLevel(add_prefix_space=False),
        "none": lambda: None,
    }[kind]()


def _decoder(recipe: TokenizerRecipe) -> Any:
    from tokenizers import decoders as d

    if recipe.pre_tokenizer in ("bert", "whitespace"):
        return d.WordPiece(prefix=WORDPIECE_PREFIX)  # wordpiece, and bpe trained with the "##" prefix
    if recipe.pre_tokenizer == "metaspace":
        return d.Metaspace(replacement="▁", prepend_scheme="always")
    if recipe.pre_tokenizer == "byte_level":
        return d.ByteLevel()
    # Pieces concatenate (kmer, char, DNA bpe, regex); byte pieces first become their characters, and the
    # SentencePiece space marker turns back into spaces less the one prepended.
    steps = [d.Replace(SPACE_MARKER, " ")] if "metaspace" in recipe.normalizer else []
    steps += [d.ByteFallback()] if recipe.byte_fallback else []
    steps.append(d.Fuse())
    if "metaspace" in recipe.normalizer:
        steps.append(d.Strip(content=" ", left=1, right=0))
    return (
        d.Sequence(steps) if len(steps) > 1 else steps[0]
    )  # kmer, char, DNA bpe: pieces concatenate with nothing in between


def _post_processor(recipe: TokenizerRecipe, tok: Any) -> Any:
    from tokenizers import processors

    def sp(role: str) -> tuple[str, int]:
        token = recipe.special_tokens[role]
        return token, tok.token_to_id(token)

    kind = recipe.post_processor
    if kind == "none":
        return None
    if kind == "bert":
        cls, sep = recipe.special_tokens["cls"], recipe.special_tokens["sep"]
        single, pair, roles = f"{cls} $A:0 {sep}:0", f"{cls} $A:0 {sep}:0 $B:1 {sep}:1", ("cls", "sep")
    else:
        bos, eos = recipe.special_tokens.get("bos", ""), recipe.special_tokens.get("eos", "")
        if kind == "bos_eos":
            single, pair, roles = f"{bos} $A {eos}", f"{bos} $A {eos} {bos}:1 $B:1 {eos}:1", ("bos", "eos")
        elif kind == "bos":
            single, pair, roles = f"{bos} $A", f"{bos} $A {bos}:1 $B:1", ("bos",)
        else:
            single, pair, roles = f"$A {eos}", f"$A {eos} $B:1 {eos}:1", ("eos",)
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=[sp(r) for r in roles])


def _kmer_vocab(recipe: TokenizerRecipe) -> dict[str, int]:
    """specials, single bases (alphabet + N), then every k-mer in lexicographic order."""
    words = list(recipe.special_tokens.values()) + list(recipe.alphabet) + ["N"]
    words += ["".join(t) for t in itertools.product(sorted(recipe.alphabet), repeat=recipe.k or 0)]
    return {w: i for i, w in enumerate(words)}


def _counted(texts: Iterable[str], counter: list[int]) -> Iterator[str]:
    for text in texts:
        if not isinstance(text, str):
            raise UserError(f"tokenizer training expects strings, got {type(text).__name__}")
        counter[0] += 1
        yield text


def train_tokenizer(
    recipe: TokenizerRecipe, texts: Iterable[str], vocab_size: int | None = None, show_progress: bool = False
) -> Any:
    """Train (or, for 'kmer', build) the recipe's tokenizer on `texts` (streamed, read once).

    `vocab_size` overrides the recipe's (e.g. a small vocabulary for the embedded default). A
    trained vocabulary can come out smaller than asked when the corpus has too few distinct
    pieces; that is logged with the reason. Returns a `transformers.PreTrainedTokenizerFast`
    whose special-token attributes (pad/unk/cls/sep/mask/bos/eos) and `model_max_length` are set.
    """
    from tokenizers import AddedToken, Tokenizer, models, trainers
    from transformers import PreTrainedTokenizerFast

    size = recipe.vocab_size if vocab_size is None else vocab_size
    if not isinstance(size, int) or size < 1:
        raise UserError(f"vocab_size must be a positive integer, got {size!r}")
    specials = list(recipe.special_tokens.values())
    unk = recipe.special("unk")
    alg = recipe.algorithm
    # BPE over pre-split words marks continuation pieces with "##" so the WordPiece decoder restores spaces.
    prefix = WORDPIECE_PREFIX if recipe.pre_tokenizer in ("bert", "whitespace") else None

    if alg == "kmer":
        if size != recipe.kmer_vocab_size:
            raise UserError(
                f"recipe {recipe.name}: a {recipe.k}-mer vocabulary has exactly "
                f"{recipe.kmer_vocab_size} entries; "
                f"vocab_size {size} cannot be honoured (leave it unset)"
            )
        tok = Tokenizer(models.WordLevel(_kmer_vocab(recipe), unk_token=unk))
        trainer = None
    elif alg == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk, continuing_subword_prefix=WORDPIECE_PREFIX))
        trainer = trainers.WordPieceTrainer(
            vocab_size=size,
            min_frequency=recipe.min_frequency,
            special_tokens=specials,
            continuing_subword_prefix=WORDPIECE_PREFIX,
            show_progress=show_progress,
        )
    elif alg == "bpe":
        extra = {"continuing_subword_prefix": prefix} if prefix else {}
        tok = Tokenizer(models.BPE(unk_token=unk, **extra))
        alphabet = (
            sorted(set(recipe.alphabet + "N")) if recipe.iupac else []
        )  # DNA: N is a base even if unseen
        if recipe.pre_tokenizer == "byte_level":
            from tokenizers import pre_tokenizers

            alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(
            vocab_size=size - (len(BYTE_TOKENS) if recipe.byte_fallback else 0),
            min_frequency=recipe.min_frequency,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=show_progress,
            **extra,
        )
    elif alg == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=size, special_tokens=specials, unk_token=unk, show_progress=show_progress
        )
    else:  # char: a word-level model over single characters, keeping the most frequent ones
        tok = Tokenizer(models.WordLevel({}, unk_token=unk))
        trainer = trainers.WordLevelTrainer(
            vocab_size=size,
            min_frequency=recipe.min_frequency,
            special_tokens=specials,
            show_progress=show_progress,
        )

    normalizer, pre = _normalizer(recipe), _pre_tokenizer(recipe)
    if normalizer is not None:
        tok.normalizer = normalizer
    if pre is not None:
        tok.pre_tokenizer = pre
    tok.decoder = _decoder(recipe)

    if trainer is not None:
        counter = [0]
        tok.train_from_iterator(_counted(texts, counter), trainer=trainer)
        if recipe.byte_fallback:
            tok = _with_byte_pieces(tok)
        if counter[0] == 0:
            raise UserError(
                f"no training text for tokenizer recipe '{recipe.name}' (the corpus yielded no documents)"
            )
        got = tok.get_vocab_size(with_added_tokens=True)
        if got < size:
            log.warning(
                "tokenizer %s: learned %d of the %d entries asked for: the corpus (%d documents) has too few "
                "distinct pieces at min_frequency=%d; use a larger corpus or a smaller vocab_size",
                recipe.name,
                got,
                size,
                counter[0],
                recipe.min_frequency,
            )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in specials + recipe.sentinels]
    )
    if recipe.placeholders:
        # Matched in the normalised text, where the placeholder patterns have produced them.
        tok.add_tokens(
            [AddedToken(t, normalized=True) for t in dict.fromkeys(t for _, t in recipe.placeholders)]
        )
    if recipe.atomic_tokens:
        tok.add_tokens([AddedToken(t, single_word=False, normalized=False) for t in recipe.atomic_tokens])
    post = _post_processor(recipe, tok)
    if post is not None:
        tok.post_processor = post

    role_kwargs = {f"{role}_token": token for role, token in recipe.special_tokens.items()}
    inputs = ["input_ids", "attention_mask"]
    if recipe.post_processor == "bert":
        inputs.insert(1, "token_type_ids")  # sentence-pair tasks (e.g. question + context) need segment ids
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=recipe.model_max_length,
        clean_up_tokenization_spaces=False,
        model_input_names=inputs,
        **role_kwargs,
        **({"extra_special_tokens": recipe.sentinels} if recipe.sentinels else {}),
    )


def _with_byte_pieces(tok: Any) -> Any:
    """The trained BPE with the 256 byte pieces appended to its vocabulary and byte fallback switched on
    (`tokenizers` trains BPE without them; SentencePiece counts them in the vocabulary, and so do we)."""
    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for piece in BYTE_TOKENS:
        vocab.setdefault(piece, len(vocab))
    data["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(data))


# --------------------------------------------------------------------------- whole-word masking support


def word_start_mask(tokenizer: Any, input_ids: Sequence[int]) -> list[bool]:
    """Per token: does it start a word? Special tokens are never word starts (never masked).

    Whole-word masking picks word starts and masks each together with its continuation tokens
    (the following tokens whose entry is False). The rule follows the tokenizer's decoder, so it
    works on bare ids (e.g. after packing) and for every recipe algorithm:
    - WordPiece-style ("##" continuation, wordpiece and bpe over words): start = no "##" prefix;
    - Metaspace ("▁") / ByteLevel ("Ġ"): start = carries the marker, or follows a special token;
    - anything else (k-mers, DNA BPE, characters): there are no words, every token is its own start.
    """
    from tokenizers import decoders as d

    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(input_ids))
    decoder = tokenizer.backend_tokenizer.decoder
    out: list[bool] = []
    prev_special = True
    for tid, piece in zip(input_ids, tokens):
        if tid in special:
            out.append(False)
            prev_special = True
            continue
        if isinstance(decoder, d.WordPiece):
            start = not piece.startswith(WORDPIECE_PREFIX)
        elif isinstance(decoder, d.Metaspace):
            start = prev_special or piece.startswith("▁")
        elif isinstance(decoder, d.ByteLevel):
            start = prev_special or piece.startswith("Ġ")
        else:
            start = True
        out.append(start)
        prev_special = False
    return out
