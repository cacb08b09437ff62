"""Small tokenizer vocabularies, built locally because nothing can be downloaded.

A real checkpoint ships its tokenizer files (``vocab.txt`` for BERT, ``vocab.json`` and
``merges.txt`` for GPT-2 and CLIP). Here they are derived from :data:`CORPUS`, a few
hundred words of shop text, by two short functions:

* :func:`wordpiece_vocab` lists special tokens, single characters, ``##`` continuations
  and every corpus word, which is all BERT's WordPiece tokenizer needs;
* :func:`learn_bpe` learns byte-pair merges (the most frequent adjacent pair, merged
  repeatedly) over byte-level symbols, for the GPT-2 and CLIP tokenizers.

The tokenizers are real ``transformers`` tokenizers; only their vocabularies are small.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise

from tokenizers import pre_tokenizers

#: Text the vocabularies are learned from: reviews, replies and product descriptions, the
#: three kinds of text the example service handles.
CORPUS = """
The kettle arrived quickly and boils water in two minutes. Great value, five stars.
The lamp stopped working after a week and support never answered my email.
Soft cotton shirt, fits well, the colour is exactly as shown in the photo.
The box was damaged and the glass cups inside were broken. I want a refund.
Comfortable shoes for long walks, but the laces are too short.
This backpack has many pockets and the zip feels strong. I would buy it again.
The blender is loud and the lid leaks when it is full. Disappointed.
Fast delivery, friendly courier, and the chair was easy to assemble.
The headphones sound clear and the battery lasts all day.
Wrong size sent twice. Please fix your stock before you take new orders.
Thank you for your review. We are glad the kettle works well for you.
We are sorry the lamp failed. Please reply with your order number and we will send a new one.
Thank you for the photo of the broken cups. A full refund is on its way.
We have passed your note about the short laces to the maker.
Sorry about the size mix up. A courier will collect the parcel tomorrow.
A red ceramic mug with a wide handle on a wooden table, soft morning light.
A blue canvas backpack with leather straps, studio photo, white background.
A steel kettle on a kitchen counter next to a green plant.
A pair of grey running shoes, side view, sharp focus.
A desk lamp with a brass arm casting warm light over an open book.
"""

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
GPT2_END = "<|endoftext|>"
CLIP_START, CLIP_END = "<|startoftext|>", "<|endoftext|>"
CLIP_SUFFIX = "</w>"


def corpus_words(text: str = CORPUS) -> list[str]:
    """Lower-cased words and punctuation marks, in order of appearance."""
    words: list[str] = []
    for raw in text.lower().split():
        word = raw.strip(string.punctuation)
        if word:
            words.append(word)
        words.extend(ch for ch in raw if ch in string.punctuation)
    return words


def wordpiece_vocab(text: str = CORPUS) -> dict[str, int]:
    """A BERT vocabulary: specials, characters, ``##`` characters, then the corpus words.

    Any lower-case ASCII text tokenizes without ``[UNK]``: a word missing from the list
    is spelled out as its first character followed by ``##`` characters.
    """
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens = [*BERT_SPECIALS, *chars, *(f"##{c}" for c in chars)]
    tokens += sorted(set(corpus_words(text)) - set(tokens))
    return {token: index for index, token in enumerate(tokens)}


def _merge_pair(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


def learn_bpe(words: Iterable[tuple[str, ...]], merges: int) -> list[tuple[str, str]]:
    """Up to ``merges`` byte-pair merges, most frequent pair first.

    Ties go to the pair that sorts first, so the result depends only on the input.
    """
    counts: Counter[tuple[str, ...]] = Counter(words)
    learned: list[tuple[str, str]] = []
    for _ in range(merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in counts.items():
            for pair in pairwise(symbols):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        learned.append(best)
        counts = Counter({_merge_pair(s, best): c for s, c in counts.items()})
    return learned


def _numbered(tokens: Iterable[str]) -> dict[str, int]:
    """Consecutive ids in order of first appearance (two merges can spell the same token)."""
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab


def _byte_level(text: str, pre_tokenizer: pre_tokenizers.PreTokenizer) -> list[str]:
    return [piece for piece, _ in pre_tokenizer.pre_tokenize_str(text)]


def gpt2_vocab(
    merges: int = 200, text: str = CORPUS
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """``vocab.json`` and ``merges.txt`` contents for a byte-level BPE as GPT-2 uses.

    The 256 byte symbols come first, so every string can be encoded.
    """
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = [tuple(piece) for piece in _byte_level(" ".join(text.split()), byte_level)]
    learned = learn_bpe(words, merges)
    tokens = sorted(pre_tokenizers.ByteLevel.alphabet())
    return _numbered([*tokens, *(a + b for a, b in learned), GPT2_END]), learned


def clip_vocab(
    merges: int = 200, text: str = CORPUS
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges in CLIP's convention: lower case, ``</w>`` ends each word."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    words: list[tuple[str, ...]] = []
    for word in corpus_words(text):
        symbols = tuple(_byte_level(word, byte_level)[0])
        words.append((*symbols[:-1], symbols[-1] + CLIP_SUFFIX))
    learned = learn_bpe(words, merges)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*alphabet, *(a + CLIP_SUFFIX for a in alphabet)]
    return _numbered([*tokens, *(a + b for a, b in learned), CLIP_START, CLIP_END]), learned
