"""From rows to model inputs: the label list and its checks, the `datasets.map` preprocessing into two-view,
windowed features (`inference_clner.encode_example`), and `CLNERDataCollator`, which pads them with the inference
core's `pad_view`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import inference_clner
from clner.data.io import classlabel_names, tag_names
from inference_clner import CONTEXT_PREFIX, DEFAULT_MAX_SEQ_LENGTH, META_KEYS, encode_example, pad_view, parse_tag

#: Per-window keys passed through the collator as long tensors.


# ----------------------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------------------


def _select_split(data: Any, split: str):
    import datasets

    if isinstance(data, (datasets.DatasetDict, dict)):
        if split not in data:
            raise ValueError(f"no {split!r} split (splits: {list(data)})")
        return data[split]
    return data


def get_label_list(dataset_dict_or_dataset: Any, split: str = "train", tag_column: str = "tags") -> list[str]:
    """Label names: the ClassLabel names when the tag column has them (in ClassLabel order), else the sorted
    names seen in ``split`` with ``O`` first. Accepts a DatasetDict, a Dataset or a list of rows."""
    ds = _select_split(dataset_dict_or_dataset, split)
    features = getattr(ds, "features", None)
    if features is not None:
        if tag_column not in features:
            raise ValueError(f"no {tag_column!r} column in the {split} data (columns: {list(features)})")
        names = classlabel_names(features[tag_column])
        if names is not None:
            return names
        column = ds[tag_column]
    else:
        column = []
        for i, row in enumerate(ds):
            if tag_column not in row:
                raise ValueError(f"{split} row {i} has no {tag_column!r}")
            column.append(row[tag_column])
    labels = {tag for tags in column for tag in tags}
    if not labels:
        raise ValueError(f"no labels in the {split} data")
    ordered = sorted(labels)
    if "O" in labels:
        ordered.remove("O")
        ordered.insert(0, "O")
    return ordered


def check_labels(dataset: Any, label2id: Mapping[str, int], split_name: str, tag_column: str = "tags") -> None:
    """Raise ValueError if ``dataset`` has a label missing from ``label2id`` (labels are never remapped).

    The message names every unseen label with the split, and the row (and word) of its first occurrence.
    Unlabeled data (no tag column) passes.
    """
    features = getattr(dataset, "features", None)
    if features is not None and tag_column not in features:
        return
    names = classlabel_names(features[tag_column]) if features is not None else None
    ids = dataset["id"] if features is not None and "id" in features else None
    column = dataset[tag_column] if features is not None else [row.get(tag_column) or [] for row in dataset]
    unseen: dict[str, tuple[int, int]] = {}
    for i, tags in enumerate(column):
        for j, tag in enumerate(tag_names(tags, names, f"{split_name} split, row {i}")):
            if tag not in label2id and tag not in unseen:
                unseen[tag] = (i, j)
    if unseen:
        details = "; ".join(
            f"{tag!r} (first at row {i}" + (f", id {ids[i]!r}" if ids is not None else "") + f", word {j})"
            for tag, (i, j) in unseen.items()
        )
        raise ValueError(
            f"{split_name} split: label(s) unseen in training: {details}. Known labels: {sorted(label2id)}. "
            f"Fix the {split_name} data or add the label to the training data; labels are never remapped."
        )


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------------


def _to_python(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _window_labels(tags: list, label2id: Mapping[str, int], idx: int, start: int, n_words: int) -> list[int]:
    """The label ids of a window's words (tags `start` to `start + n_words` of row `idx`); a missing tag or a tag
    outside `label2id` is an error naming the row and word, never a silent remap."""
    window = tags[start : start + n_words]
    if len(window) != n_words:
        raise ValueError(f"row {idx}: window at word {start} has {n_words} words but only {len(window)} tags")
    labels = []
    for j, tag in enumerate(window):
        if tag not in label2id:
            raise ValueError(f"row {idx}, word {start + j}: label {tag!r} not in label2id {sorted(label2id)}")
        labels.append(label2id[tag])
    return labels


def preprocess_dataset(
    dataset: Any,
    tokenizer: Any,
    label2id: Mapping[str, int] | None = None,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    stride: int = 16,
    with_labels: bool = True,
    num_proc: int | None = None,
    desc: str = "Encoding sentences and contexts",
    snippet_separator: str | None = None,
    tag_column: str = "tags",
    load_from_cache_file: bool | None = None,
):
    """Encode rows into model features: one output row per window from ``modeling_clner.encode_example``.

    Output columns: the feature keys of ``encode_example`` (both views, ``word_index``, ``has_context``,
    ``word_start``, ``own_start``, ``own_end``), ``example_id`` (index of the source row), ``length`` (the
    sub-tokens a training step runs for the row: its sentence view, plus its context view when it has a context;
    what `--train_sampling_strategy group_by_length` groups on) and, for labeled data when ``with_labels``,
    ``labels`` (label ids of the window's words). Source columns are removed.
    A DatasetDict is processed split by split.
    """
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        settings = dict(
            label2id=label2id,
            max_seq_length=max_seq_length,
            stride=stride,
            with_labels=with_labels,
            num_proc=num_proc,
            snippet_separator=snippet_separator,
            tag_column=tag_column,
            load_from_cache_file=load_from_cache_file,
        )
        return datasets.DatasetDict(
            {
                split: preprocess_dataset(ds, tokenizer, desc=f"{desc} ({split})", **settings)
                for split, ds in dataset.items()
            }
        )

    labeled = with_labels and tag_column in dataset.column_names
    if labeled and label2id is None:
        raise ValueError("preprocess_dataset needs label2id for labeled data (or with_labels=False)")
    names = classlabel_names(dataset.features[tag_column]) if labeled else None
    has_context = "context" in dataset.column_names
    label2id = dict(label2id) if label2id is not None else None

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {}
        keys: list[str] | None = None
        for k, idx in enumerate(indices):
            words = batch["tokens"][k]
            row_tags = tag_names(batch[tag_column][k], names, f"row {idx}") if labeled else None
            can_start = None
            if row_tags is not None and len(row_tags) == len(words):  # no window opens inside a gold entity
                can_start = [parse_tag(str(t))[0] not in ("I", "E") for t in row_tags]
            features = encode_example(
                tokenizer,
                words,
                batch["context"][k] if has_context else None,
                max_seq_length=max_seq_length,
                stride=stride,
                snippet_separator=snippet_separator,
                can_start=can_start,
            )
            if not features:
                raise ValueError(f"row {idx}: encode_example returned no feature")
            for feature in features:
                feature = {key: _to_python(value) for key, value in feature.items()}
                if keys is None:
                    keys = list(feature)
                    out.update({key: [] for key in keys + (["labels"] if labeled else []) + ["example_id", "length"]})
                elif sorted(feature) != sorted(keys):
                    raise ValueError(f"row {idx}: feature keys {sorted(feature)} differ from {sorted(keys)}")
                for key in keys:
                    out[key].append(feature[key])
                out["length"].append(
                    len(feature["input_ids"])
                    + (len(feature[CONTEXT_PREFIX + "input_ids"]) if feature["has_context"] else 0)
                )
                if labeled:
                    out["labels"].append(
                        _window_labels(row_tags, label2id, idx, int(feature["word_start"]), len(feature["word_index"]))
                    )
                out["example_id"].append(idx)
        return out

    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=desc,
        load_from_cache_file=load_from_cache_file,
        new_fingerprint=_features_fingerprint(dataset, encode),
    )


@functools.cache
def encoding_code_key() -> str:
    """sha1 of the code that turns rows into features (this module and the inference core), read once a process:
    the code that runs is the code that was imported, even if the files are edited later."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha1()
    for path in (__file__, inference_clner.__file__):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _features_fingerprint(dataset: Any, encode: Any) -> str | None:
    """The cache fingerprint of the features: what `datasets` would compute (the rows, and the map function with
    the tokenizer and settings it closes over), plus `encoding_code_key()`, since `datasets` pickles an importable
    helper such as `encode_example` by its name, so that features cached before an edit of that code would be
    reused. None (the default fingerprint) when the function cannot be hashed."""
    from datasets.fingerprint import Hasher

    try:
        return Hasher.hash([dataset._fingerprint, Hasher.hash(encode), encoding_code_key()])
    except Exception:  # noqa: BLE001 - an unpicklable tokenizer: datasets then picks its own (random) fingerprint
        return None


# ----------------------------------------------------------------------------------------------------------------
# Collator
# ----------------------------------------------------------------------------------------------------------------


def check_longest_word(splits: Mapping[str, Any], tokenizer, max_seq_length: int) -> None:
    """Raise ValueError naming the longest word of `splits` (datasets with `tokens`) when its sub-tokens and the
    tokenizer's special tokens do not fit `max_seq_length`: a window of that word alone would lose its end."""
    words = sorted({w for ds in splits.values() for row in ds["tokens"] for w in row})
    if not words:
        return
    counts = [len(ids) for ids in tokenizer(words, add_special_tokens=False, verbose=False)["input_ids"]]
    room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    longest = max(range(len(words)), key=lambda i: (counts[i], words[i]))
    if counts[longest] > room:
        raise ValueError(
            f"--max_seq_length {max_seq_length} is too small for the word {words[longest][:60]!r}: its "
            f"{counts[longest]} sub-tokens and the {max_seq_length - room} special tokens need "
            f"{counts[longest] + max_seq_length - room}; raise --max_seq_length (16 or more is usual)"
        )


def _to_list(value: Any) -> list:
    value = _to_python(value)
    return list(value)


@dataclass
class CLNERDataCollator:
    """Pads a batch of two-view features into torch tensors.

    The sentence view (``input_ids``...) and the context view (``ctx_input_ids``...) are padded EACH to its own
    longest row (rounded up to ``pad_to_multiple_of``). ``word_index``/``ctx_word_index`` pad with ``-1`` and
    ``labels`` with ``-100`` to the batch's largest word count (both views share the word-level labels);
    ``has_context`` becomes a bool tensor; ``example_id``, ``word_start``, ``own_start``, ``own_end`` pass
    through as long tensors. Other keys are ignored.
    """

    tokenizer: Any
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = -100
    word_index_pad_id: int = -1

    def _pad_view(self, features: list[Mapping[str, Any]], prefix: str, batch: dict[str, Any]) -> None:
        """One view, padded by the inference core's `pad_view` (as every inference path pads it)."""
        import torch

        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token")
        padded = pad_view(
            features,
            prefix,
            pad_id,
            getattr(self.tokenizer, "pad_token_type_id", 0) or 0,
            multiple_of=self.pad_to_multiple_of,
            left=getattr(self.tokenizer, "padding_side", "right") == "left",
            word_pad_id=self.word_index_pad_id,
        )
        for key, rows in padded.items():
            batch[prefix + key] = torch.tensor(rows, dtype=torch.long).reshape(len(rows), len(rows[0]))

    def __call__(self, features: list[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not features:
            raise ValueError("empty batch")
        batch: dict[str, Any] = {}
        for prefix in ("", CONTEXT_PREFIX):
            if f"{prefix}input_ids" in features[0]:
                self._pad_view(features, prefix, batch)
        if "word_index" in batch and CONTEXT_PREFIX + "word_index" in batch:
            width = max(batch["word_index"].shape[1], batch[CONTEXT_PREFIX + "word_index"].shape[1])
            for key in ("word_index", CONTEXT_PREFIX + "word_index"):
                t = batch[key]
                if t.shape[1] < width:
                    batch[key] = torch.nn.functional.pad(t, (0, width - t.shape[1]), value=self.word_index_pad_id)
        if "labels" in features[0]:
            if any("labels" not in f for f in features):
                raise ValueError("'labels' missing from some features")
            labels = [_to_list(f["labels"]) for f in features]
            width = max(len(v) for v in labels)
            if "word_index" in batch:
                width = max(width, batch["word_index"].shape[1])
            batch["labels"] = torch.tensor(
                [v + [self.label_pad_token_id] * (width - len(v)) for v in labels], dtype=torch.long
            )
        if "has_context" in features[0]:
            batch["has_context"] = torch.tensor(
                [bool(_to_python(f["has_context"])) for f in features], dtype=torch.bool
            )
        for key in META_KEYS:
            if key in features[0]:
                batch[key] = torch.tensor([int(_to_python(f[key])) for f in features], dtype=torch.long)
        return batch
