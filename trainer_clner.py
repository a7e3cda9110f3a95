"""`CLNERTrainer`: cooperative learning between the sentence view and the context view (CLNER, ACL 2021).

Every batch carries both views of each sentence (see `clner.data.preprocess.CLNERDataCollator`). Training minimises, per
sentence with a retrieved context,

    nll_weight * L_NLL + nll_ext_weight * L_NLL-EXT + cl_weight * L_CL

with L_NLL the CRF negative log-likelihood of the sentence view, L_NLL-EXT that of the context view, and L_CL
either CL-KL (KL of the CRF word posteriors, the context view as teacher) or CL-L2 (distance of the word
representations). The defaults are those of the official code (Alibaba-NLP/CLNER, a flair 0.4.3 fork), which
produced the paper's tables: weights 1 / 0.5 / 0.5, CL-KL at temperature 0.3 scaled by T^2, CL-L2 as a
per-dimension mean, the teacher detached. The paper's literal eq. (5) is `--nll_weight 1 --nll_ext_weight 1
--cl_weight 1 --cl_temperature 1 --cl_l2_reduction sum`.

A sentence without a context gets the official treatment: the official trainer concatenates the sentence corpus
and the context corpus, so such a sentence is trained twice as a plain sentence (its NLL with weight 1 from each
corpus) and gets no CL term. Its context view is its sentence view, so no context pass is run for it: its NLL is
counted `nll_weight + nll_ext_weight_no_context` times from the one sentence pass. Every term is a mean over
the batch's rows. Evaluation decodes both views in one pass and reports `sentence_*`, `context_*` and their
two-view means (`f1`, `precision`, `recall`: the official model-selection criterion).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import Trainer

from clner.arguments import CLArguments
from clner.errors import CLNERUsageError, TrainingDivergedError
from clner.files import atomic_path, write_text
from clner.losses import CL_LOSSES
from clner.metrics import SURFACE, SURFACE_METRICS, seqeval_metrics, surface_form_metrics
from inference_clner import CONTEXT_PREFIX, META_KEYS, VIEW_KEYS, stitch_windows


def check_training_arguments(args) -> None:
    """Refuse `TrainingArguments` that `CLNERTrainer` ignores or that break it, before any work, naming the flag.

    `label_smoothing_factor` smooths a per-token cross-entropy; the CLNER loss is the CRF's sentence-level NLL
    (plus L_CL), so it would change nothing. `eval_do_concat_batches false` hands the metrics a list of per-batch
    predictions, and `batch_eval_metrics` calls them batch by batch: the metrics stitch the windows of long
    sentences back together and score whole sentences, which needs every prediction at once. Accepted as they are:
    `average_tokens_across_devices` (the loss is a per-batch mean, so it does not apply), and
    `include_num_input_tokens_seen` (counts the sentence view's tokens, `input_ids`). `past_index` no longer
    exists in transformers 5."""
    if args is None:
        return
    if args.label_smoothing_factor:
        raise CLNERUsageError(
            f"--label_smoothing_factor {args.label_smoothing_factor:g} has no effect here: label "
            "smoothing applies to a per-token cross-entropy, and the CLNER loss is the CRF's "
            "sentence-level negative log-likelihood (plus the CL term); leave it at 0"
        )
    if not args.eval_do_concat_batches:
        raise CLNERUsageError(
            "--eval_do_concat_batches false cannot work here: the metrics stitch the windows of "
            "long sentences back together and score whole sentences, which needs the predictions "
            "of every batch concatenated; leave it at true"
        )
    if args.batch_eval_metrics:
        raise CLNERUsageError(
            "--batch_eval_metrics cannot work here: the metrics stitch the windows of long "
            "sentences back together and score whole sentences, which needs every prediction at "
            "once; leave it out"
        )


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters holding a NaN or an infinity (an empty list for a sound model)."""
    return [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]


def split_views(inputs: dict[str, Any]) -> tuple[dict, dict]:
    """Model inputs of the sentence view and of the context view (the `ctx_` tensors, renamed)."""
    sent = {k: inputs[k] for k in VIEW_KEYS if k in inputs}
    ctx = {k: inputs[CONTEXT_PREFIX + k] for k in VIEW_KEYS if CONTEXT_PREFIX + k in inputs}
    return sent, ctx


def select_rows(view: dict[str, torch.Tensor], rows: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """One view's inputs restricted to `rows` (all rows when None), with the trailing sub-token columns and word
    columns that are padding in every selected row cut off, so a subset of short rows is not run at the length of
    the batch's longest row."""
    if rows is None:
        return view
    out = {k: v.index_select(0, rows) for k, v in view.items()}
    if rows.numel() == 0:
        return out
    attention = out.get("attention_mask")
    if attention is not None:
        attended = attention.bool().any(0)
        length = int(attended.nonzero().max()) + 1 if bool(attended.any()) else 1
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in out:
                out[key] = out[key][:, :length]
    words = int((out["word_index"] >= 0).sum(1).max())
    out["word_index"] = out["word_index"][:, : max(words, 1)]
    return out


class ViewOutput(NamedTuple):
    """A view's model outputs for `rows` of the batch (`None`: every row)."""

    out: Any
    rows: torch.Tensor | None


class WordOutputs(NamedTuple):
    """A view's word-level outputs for the rows the CL loss compares: `(B, W, C)` logits, `(B, W, H)` hidden states."""

    logits: torch.Tensor
    word_hidden_states: torch.Tensor | None


class CLNERTrainer(Trainer):
    """A `Trainer` whose `compute_loss` runs the sentence view and the context view and adds the CL loss.

    Args:
        cl_args: `CLArguments`; the rest as `transformers.Trainer`. `compute_metrics` defaults to seqeval on both
            views (`sentence_{precision,recall,f1,accuracy}`, `context_...`, and `f1` / `precision` / `recall`, the
            mean of the two views, which `--metric_for_best_model f1` selects on as the official code does; per
            entity type with `return_entity_level_metrics=True`; WNUT-17's surface-form scores too when the
            trainer has the sentences' words, `eval_words`).
    """

    #: run the context pass only on rows that have a context (their context view differs from the sentence view);
    #: False runs it on every row, as earlier versions did (kept for the equivalence test and the benchmark)
    skip_context_pass_without_context: bool = True
    #: stop training with a `TrainingDivergedError` at the first non-finite training loss (and refuse to end
    #: `train()` with non-finite weights); False lets the Trainer go on, logging `loss` as NaN for such steps
    stop_on_non_finite_loss: bool = True
    #: the loss is a per-batch mean (never normalised by `num_items_in_batch`): the Trainer divides it by the
    #: gradient-accumulation steps, as transformers documents for a Trainer that computes its own loss
    loss_is_scaled_for_ga = False

    def __init__(self, *args, cl_args: CLArguments | None = None, return_entity_level_metrics: bool = False, **kwargs):
        self.cl_args = cl_args or CLArguments()
        self.return_entity_level_metrics = return_entity_level_metrics
        if kwargs.get("compute_metrics") is None:
            kwargs["compute_metrics"] = self.two_view_metrics
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        check_training_arguments(training_args)
        if training_args is not None and training_args.ddp_find_unused_parameters is None:
            # every parameter gets a gradient each step (the encoder is built without its pooler); with the search
            # for unused parameters on, DDP would flag the CRF (used outside forward) as unused and then fail with
            # "Expected to mark a variable ready only once" when its gradient arrives
            training_args.ddp_find_unused_parameters = False
        super().__init__(*args, **kwargs)
        self.args.remove_unused_columns = False  # the context view and window columns are not forward() arguments
        if self.args.label_names is None:
            self.args.label_names = ["labels"]
        self._components: dict[str, list[float]] = defaultdict(list)
        if self.args.neftune_noise_alpha is not None:
            try:
                self.accelerator.unwrap_model(self.model).get_input_embeddings()
            except NotImplementedError:
                raise CLNERUsageError(
                    f"--neftune_noise_alpha {self.args.neftune_noise_alpha:g} cannot work here: "
                    "NEFTune adds noise through the model's input embeddings, which "
                    f"{type(self.model).__name__} does not expose (get_input_embeddings); "
                    "leave it out"
                ) from None

    # -- training -------------------------------------------------------------------------------------------------
    def train(self, *args, **kwargs):
        """`Trainer.train`, refusing to end with weights that hold a NaN or an infinity (a last update that
        overflowed: no later loss would show it), so that such a model is never saved as trained."""
        output = super().train(*args, **kwargs)
        if self.stop_on_non_finite_loss:
            bad = non_finite_parameters(self.accelerator.unwrap_model(self.model))
            if bad:
                shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                raise TrainingDivergedError(
                    f"training diverged: after step {self.state.global_step} the weights of "
                    f"{shown} are NaN or infinite. {self._divergence_advice()}"
                )
        return output

    def _divergence_advice(self) -> str:
        """What to change after a divergence, with the run's own values."""
        head = self.cl_args.head_learning_rate
        rates = f"--learning_rate (now {self.args.learning_rate:g})" + (
            f" and --head_learning_rate (now {head:g})" if head is not None else ""
        )
        clip = "" if self.args.max_grad_norm else ", turn gradient clipping back on (--max_grad_norm 1)"
        return (
            f"Lower {rates}{clip} and check the training data (a batch the model cannot score); the run stops "
            "here so that the broken model is not saved"
        )

    # -- optimisation ---------------------------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the emission layer and CRF at `head_learning_rate` when set."""
        optimizer = super().create_optimizer(model)
        head_lr = self.cl_args.head_learning_rate
        if head_lr is None:
            return optimizer
        unwrapped = self.accelerator.unwrap_model(self.model)
        head = {id(p) for m in (unwrapped.classifier, unwrapped.crf) for p in m.parameters()}
        for group in list(optimizer.param_groups):
            mine = [p for p in group["params"] if id(p) in head]
            if mine:
                group["params"] = [p for p in group["params"] if id(p) not in head]
                optimizer.add_param_group(
                    {
                        **{k: v for k, v in group.items() if k != "params"},
                        "params": mine,
                        "lr": head_lr,
                        "initial_lr": head_lr,
                    }
                )
        return optimizer

    def _context_rows(self, inputs, n_rows: int, device) -> torch.Tensor | None:
        """Indices of the rows whose context view differs from their sentence view (None: every row)."""
        if not self.skip_context_pass_without_context:
            return None
        has_ctx = inputs.get("has_context")
        if has_ctx is None or CONTEXT_PREFIX + "input_ids" not in inputs:
            return torch.zeros(0, dtype=torch.long, device=device)
        rows = has_ctx.nonzero().flatten()
        return None if len(rows) == n_rows else rows

    def run_views(self, model, inputs, sentence: str | None = "all", context: bool = True) -> dict[str, ViewOutput]:
        """Forward passes of one batch's views.

        The context pass runs only on the rows that have a context: for the others the context view is the
        sentence view. `sentence` is "all" (every row), "rest" (the rows without a context) or None.
        """
        sent_in, ctx_in = split_views(inputs)
        n_rows = sent_in["input_ids"].shape[0]
        ctx_rows = self._context_rows(inputs, n_rows, sent_in["input_ids"].device)
        outputs: dict[str, ViewOutput] = {}
        if sentence == "all":
            outputs["sentence"] = ViewOutput(model(**sent_in), None)
        elif sentence == "rest" and ctx_rows is not None:
            keep = torch.ones(n_rows, dtype=torch.bool, device=sent_in["input_ids"].device)
            keep[ctx_rows] = False
            rest = keep.nonzero().flatten()
            rest = None if len(rest) == n_rows else rest
            if rest is None or len(rest):
                outputs["sentence"] = ViewOutput(model(**select_rows(sent_in, rest)), rest)
        if context:
            run = ctx_rows is None or len(ctx_rows) > 0
            out = model(**select_rows(ctx_in or sent_in, ctx_rows)) if run else None
            outputs["context"] = ViewOutput(out, ctx_rows)
        return outputs

    @staticmethod
    def _to_rows(values: torch.Tensor, rows: torch.Tensor | None, n_rows: int) -> torch.Tensor:
        """Per-row values of a row subset, scattered into a `(n_rows,)` tensor (zeros elsewhere)."""
        if rows is None:
            return values
        return values.new_zeros((n_rows,) + values.shape[1:]).index_copy(0, rows, values)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The CLNER objective of the batch (see the module docstring); each term is a mean over the batch rows.

        Logged components: `loss_nll` (sentence-view NLL), `loss_nll_ext` (context-view NLL, which for a sentence
        without a context is its sentence-view NLL), each a mean over the labelled rows, and `loss_cl`, a mean over
        all rows (0 for those without a context).
        """
        args = self.cl_args
        labels = inputs.get("labels")
        unwrapped = self.accelerator.unwrap_model(model)
        n_rows = inputs["input_ids"].shape[0]
        views = args.train_views
        outputs = self.run_views(
            model, inputs, sentence="rest" if views == "context" else "all", context=views != "sentence"
        )
        sent, ctx = outputs.get("sentence"), outputs.get("context")
        has_ctx = self._has_context(inputs)

        def row_nll(view: ViewOutput | None):
            if view is None or view.out is None:
                return None, None
            sub = labels if view.rows is None else labels.index_select(0, view.rows)
            nll, labelled = unwrapped.crf_nll(
                view.out.logits, sub[:, : view.out.word_mask.shape[1]], view.out.word_mask
            )
            return self._to_rows(nll, view.rows, n_rows), self._to_rows(labelled, view.rows, n_rows)

        terms: dict[str, torch.Tensor] = {}
        loss = None
        if labels is not None:
            nll_s, lab_s = row_nll(sent)
            nll_c, lab_c = row_nll(ctx)
            labelled = lab_s if lab_c is None else lab_c if lab_s is None else lab_s | lab_c
            n_lab = labelled.sum().clamp_min(1)
            if nll_c is None:
                nll_e = nll_s
            elif nll_s is None:
                nll_e = nll_c
            else:
                nll_e = torch.where(has_ctx, nll_c, nll_s)
            if views == "sentence":
                loss = terms["loss_nll"] = nll_s.sum() / n_lab
            elif views == "context":
                loss = terms["loss_nll_ext"] = nll_e.sum() / n_lab
            else:
                terms["loss_nll"] = nll_s.sum() / n_lab
                terms["loss_nll_ext"] = nll_e.sum() / n_lab
                ext = torch.where(has_ctx, args.nll_ext_weight * nll_e, args.nll_ext_weight_no_context * nll_s)
                loss = args.nll_weight * terms["loss_nll"] + ext.sum() / n_lab
        if args.uses_cl:
            terms["loss_cl"] = self._cl_term(unwrapped, sent, ctx, labels, has_ctx)
            loss = args.cl_weight * terms["loss_cl"] + (0.0 if loss is None else loss)
        if loss is None:
            raise ValueError("nothing to optimise: the batch has no labels and the CL loss is off")
        if model.training:
            for k, v in terms.items():
                self._components[k].append(float(v.detach()))
            if self.stop_on_non_finite_loss and not bool(torch.isfinite(loss.detach())):
                parts = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in terms.items())
                raise TrainingDivergedError(
                    f"training diverged at step {self.state.global_step + 1}: the loss is {float(loss.detach()):g}"
                    f"{f' ({parts})' if parts else ''}. {self._divergence_advice()}"
                )
        if return_outputs:
            return loss, outputs
        return loss

    @staticmethod
    def _has_context(inputs) -> torch.Tensor:
        """`(B,)` bool: which rows have a context view that differs from their sentence view."""
        has_ctx = inputs.get("has_context")
        if has_ctx is None or CONTEXT_PREFIX + "input_ids" not in inputs:
            return torch.zeros(inputs["input_ids"].shape[0], dtype=torch.bool, device=inputs["input_ids"].device)
        return has_ctx.bool()

    def _cl_term(self, unwrapped, sent: ViewOutput, ctx: ViewOutput, labels, has_ctx) -> torch.Tensor:
        """L_CL over the rows with a context, as a mean over all the batch's rows."""
        args = self.cl_args
        if ctx.out is None:  # no row of the batch has a context
            return sent.out.logits.new_zeros((), dtype=torch.float32)
        mask = ctx.out.word_mask
        width = mask.shape[1]
        pick = (lambda t: t[:, :width]) if ctx.rows is None else (lambda t: t.index_select(0, ctx.rows)[:, :width])
        weight = pick(has_ctx[:, None])[:, 0].to(torch.float32)
        if labels is not None and args.unlabeled_weight != 1.0:
            labelled = ((pick(labels) != -100) & mask).any(1)
            weight = torch.where(labelled, weight, torch.full_like(weight, args.unlabeled_weight))
        hidden = sent.out.word_hidden_states
        student = WordOutputs(pick(sent.out.logits), None if hidden is None else pick(hidden))
        cl = CL_LOSSES[args.cl_loss].compute(unwrapped.crf, ctx.out, student, mask, weight, args)
        return cl * (mask.shape[0] / len(has_ctx))

    # -- outputs: every file written whole, by a rename (`clner.files`) --------------------------------------------
    def save_metrics(self, split: str, metrics: dict, combined: bool = True) -> None:
        """`Trainer.save_metrics` (``{split}_results.json`` and ``all_results.json``), each file written atomically."""
        if not self.is_world_process_zero():
            return
        out = Path(self.args.output_dir)
        write_text(out / f"{split}_results.json", json.dumps(metrics, indent=4, sort_keys=True) + "\n")
        if combined:
            path = out / "all_results.json"
            combined_metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            combined_metrics.update(metrics)
            write_text(path, json.dumps(combined_metrics, indent=4, sort_keys=True) + "\n")

    def save_state(self) -> None:
        """`Trainer.save_state` (``trainer_state.json``), written atomically."""
        if self.is_world_process_zero():
            with atomic_path(Path(self.args.output_dir) / "trainer_state.json") as tmp:
                self.state.save_to_json(str(tmp))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss component since the last training log (`loss_nll`, `loss_nll_ext`,
        `loss_cl`). When a component is NaN or infinite, so is the logged `loss`: the Trainer's
        `logging_nan_inf_filter` leaves non-finite steps out of it, which would otherwise log the mean of the
        finite steps, or 0 when there are none, next to NaN parts."""
        if "loss" in logs and self._components:
            for k, values in self._components.items():
                logs[k] = sum(values) / len(values)  # full precision: L_CL is often below 1e-4
                if not math.isfinite(logs[k]) and math.isfinite(logs["loss"]):
                    logs["loss"] = logs[k]
            self._components.clear()
        super().log(logs, start_time)

    # -- evaluation -----------------------------------------------------------------------------------------------
    #: the words of `eval_dataset`'s sentences (one list per source row, in `example_id` order: e.g. the raw split's
    #: ``tokens`` column), or a dict of them by name for a dict of evaluation datasets. With them, evaluation also
    #: reports each view's surface-form scores (`two_view_metrics`); `evaluate` and `predict` take a dataset's words
    #: as `words`
    eval_words: Any = None
    _metric_words: list[list[str]] | None = None

    @contextlib.contextmanager
    def _scoring_words(self, words):
        """The words `two_view_metrics` scores surface forms with while the block runs (None: no surface forms)."""
        previous = self._metric_words
        self._metric_words = None if words is None or isinstance(words, Mapping) else [list(w) for w in words]
        try:
            yield
        finally:
            self._metric_words = previous

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", *, words=None):
        """`Trainer.evaluate`, with the sentences' `words` for the surface-form scores: by default `eval_words` when
        the trainer's own `eval_dataset` is evaluated (by name, for a dict of datasets)."""
        if words is None and (eval_dataset is None or eval_dataset is self.eval_dataset):
            words = self.eval_words
        elif words is None and isinstance(eval_dataset, str) and isinstance(self.eval_words, Mapping):
            words = self.eval_words.get(eval_dataset)
        with self._scoring_words(words):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix: str = "test", *, words=None):
        """`Trainer.predict`, with the sentences' `words` (one list per source row) for the surface-form scores."""
        with self._scoring_words(words):
            return super().predict(test_dataset, ignore_keys, metric_key_prefix)

    @contextlib.contextmanager
    def _every_row(self):
        """`dataloader_drop_last` off while an evaluation or prediction dataloader is built: it is a training flag
        (even batch sizes for the optimiser), and evaluation and prediction must cover every sentence."""
        drop = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = False
        try:
            yield
        finally:
            self.args.dataloader_drop_last = drop

    def get_eval_dataloader(self, eval_dataset=None):
        """The Trainer's evaluation dataloader, never dropping the last, incomplete batch."""
        with self._every_row():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        """The Trainer's prediction dataloader, never dropping the last, incomplete batch."""
        with self._every_row():
            return super().get_test_dataloader(test_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Loss plus Viterbi paths of both views; the window metadata rides along so that windows of long
        sentences are stitched back after the (distributed) gather. Passes the loss already ran are reused, and a
        row without a context takes its sentence-view path as its context-view path (the inputs are the same)."""
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad():
            loss, outputs = None, {}
            if labels is not None and bool((labels != -100).any()):
                with self.compute_loss_context_manager():
                    loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
                loss = loss.detach()
            if prediction_loss_only:
                return loss, None, None
            crf = self.accelerator.unwrap_model(model).crf
            sent = outputs.get("sentence")
            if sent is None or sent.rows is not None:
                sent = self.run_views(model, inputs, sentence="all", context=False)["sentence"]
            ctx = outputs.get("context") or self.run_views(model, inputs, sentence=None, context=True)["context"]
            sent_paths = crf.viterbi_decode(sent.out.logits, sent.out.word_mask)
            ctx_paths = sent_paths.clone()
            if ctx.out is not None:
                sub = crf.viterbi_decode(ctx.out.logits, ctx.out.word_mask)
                rows = ctx.rows if ctx.rows is not None else torch.arange(len(sub), device=sub.device)
                ctx_paths[rows, : sub.shape[1]] = sub
            meta = torch.stack([inputs[k] for k in META_KEYS], dim=1)  # (B, 4)
        # a tuple: the Trainer pads (with -100), concatenates and gathers each element on its own
        return loss, (sent_paths, ctx_paths, meta), labels

    @staticmethod
    def unpack_predictions(predictions, label_ids):
        """Gathered `(sentence paths, context paths, meta)` -> per-view stitched label-id sequences, and gold."""
        sent, ctx, meta = predictions
        meta = [dict(zip(META_KEYS, m)) for m in np.asarray(meta).tolist()]
        views = {
            name: stitch_windows([dict(m, predictions=p) for p, m in zip(np.asarray(paths).tolist(), meta)])
            for name, paths in (("sentence", sent), ("context", ctx))
        }
        gold = stitch_windows([dict(m, predictions=g) for g, m in zip(np.asarray(label_ids).tolist(), meta)])
        return views, gold

    def two_view_metrics(self, eval_pred) -> dict[str, float]:
        """seqeval metrics of both views, prefixed `sentence_` and `context_`, and `precision` / `recall` / `f1`:
        the mean of the two views' values. The official code selects the best epoch on that mean F1, so
        `--metric_for_best_model f1` does the same.

        With the sentences' words (`eval_words`, or `words` of `evaluate` / `predict`), also WNUT-17's surface-form
        scores of each view (`clner.metrics.surface_form_metrics`: `sentence_surface_precision` / `_recall` / `_f1`,
        `context_surface_...`) and their two-view means (`surface_precision` / `_recall` / `_f1`); they select
        nothing unless `--metric_for_best_model` names one. They are left out where an entity type is named
        ``surface`` and per-type metrics are on (its keys would be the same)."""
        id2label = self.accelerator.unwrap_model(self.model).config.id2label
        views, gold = self.unpack_predictions(eval_pred.predictions, eval_pred.label_ids)
        gold_names = [[id2label[int(i)] for i in row] for row in gold]
        words = self._metric_words
        if words is not None and [len(w) for w in words] != [len(g) for g in gold_names]:
            raise ValueError(
                f"the words given for the surface-form scores ({len(words)} sentences) are not those of the "
                f"evaluated dataset ({len(gold_names)} sentences, or other lengths): give the words of its source "
                "rows, in order"
            )
        metrics, surface = {}, {}
        for name, pred in views.items():
            pred_names = [[id2label[int(i)] for i in row] for row in pred]
            for k, v in seqeval_metrics(gold_names, pred_names, self.return_entity_level_metrics).items():
                metrics[f"{name}_{k}"] = v
            if words is not None and f"{name}_{SURFACE}_number" not in metrics:  # no entity type named "surface"
                surface[name] = surface_form_metrics(words, gold_names, pred_names)
                metrics.update({f"{name}_{SURFACE}_{k}": v for k, v in surface[name].items()})
        for k in ("precision", "recall", "f1"):
            metrics[k] = (metrics[f"sentence_{k}"] + metrics[f"context_{k}"]) / 2
        if len(surface) == 2:
            metrics.update(
                {f"{SURFACE}_{k}": (surface["sentence"][k] + surface["context"][k]) / 2 for k in SURFACE_METRICS}
            )
        return metrics
