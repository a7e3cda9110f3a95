"""`CLNERTrainer`: cooperative learning between the sentence view and the context view (CLNER, ACL 2021).

Every batch carries both views of each sentence (see `data_clner.CLNERDataCollator`). Training minimises

    L = nll_weight * L_NLL + nll_ext_weight * L_NLL-EXT + cl_weight * L_CL

with L_NLL the CRF negative log-likelihood of the sentence view, L_NLL-EXT that of the context view, and L_CL
either CL-L2 (squared distance of the word representations) or CL-KL (KL of the CRF word posteriors, the context
view as teacher). Evaluation decodes both views in one pass and reports `sentence_*` and `context_*` metrics.

The paper (Wang et al., 2021, eq. 5) weighs the three terms 1/1/1; the official code (flair 0.4.3 fork) uses
0.5/0.5 for the two NLL terms, stops the gradient through the teacher view and divides the log-marginals by a
temperature of 0.3. Each choice is a `CLArguments` field; defaults follow the paper, except `cl_detach_context`,
on by default as in the official code.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from transformers import Trainer

from data_clner import stitch_windows

VIEW_KEYS = ("input_ids", "attention_mask", "token_type_ids", "word_index")
META_KEYS = ("example_id", "word_start", "own_start", "own_end")


@dataclass
class CLArguments:
    """Cooperative-learning options (the CLNER part of `run_ner_cl.py`'s arguments)."""

    train_views: str = field(
        default="both",
        metadata={"help": "Views trained on: 'both' (CLNER), 'context' (the paper's w/ CONTEXT baseline) or "
                          "'sentence' (w/o CONTEXT baseline).", "choices": ["both", "context", "sentence"]},
    )
    cl_loss: str = field(
        default="kl",
        metadata={"help": "Cooperative-learning loss between the views: 'kl' (CL-KL), 'l2' (CL-L2) or 'none'.",
                  "choices": ["kl", "l2", "none"]},
    )
    cl_weight: float = field(default=1.0, metadata={"help": "Weight of L_CL (paper: 1)."})
    nll_weight: float = field(default=1.0, metadata={"help": "Weight of L_NLL, the sentence view (paper: 1; "
                                                             "official code: 0.5)."})
    nll_ext_weight: float = field(default=1.0, metadata={"help": "Weight of L_NLL-EXT, the context view (paper: 1; "
                                                                 "official code: 0.5)."})
    cl_temperature: float = field(default=1.0, metadata={"help": "CL-KL divides both views' log-marginals by this "
                                                                 "before renormalising (paper: 1; official code: 0.3)."})
    cl_detach_context: bool = field(default=True, metadata={"help": "Stop gradients of L_CL through the context "
                                                                    "(teacher) view, as the official code does."})
    head_learning_rate: Optional[float] = field(
        default=None, metadata={"help": "Learning rate of the emission layer and CRF (default: --learning_rate). "
                                        "CRF transitions learn slowly at encoder learning rates."})
    unlabeled_weight: float = field(default=1.0, metadata={"help": "Weight of L_CL on unlabeled rows "
                                                                   "(--unlabeled_file)."})

    def __post_init__(self):
        for name, options in (("train_views", ("both", "context", "sentence")), ("cl_loss", ("kl", "l2", "none"))):
            if getattr(self, name) not in options:
                raise ValueError(f"--{name} must be one of {options}, got {getattr(self, name)!r}")
        if self.cl_temperature <= 0:
            raise ValueError("--cl_temperature must be positive")

    @property
    def uses_cl(self) -> bool:
        return self.train_views == "both" and self.cl_loss != "none" and self.cl_weight != 0


def cl_kl_loss(crf, logits_ctx, logits_sent, word_mask, row_weight, temperature=1.0, detach_context=True):
    """CL-KL: per sentence, the sum over its words of KL(p(y_i | x, x~) || p(y_i | x)) on CRF posterior marginals,
    averaged over the batch rows (weighted by `row_weight`, 0 for rows without context). Shapes: logits `(B, W, C)`,
    word_mask `(B, W)`, row_weight `(B,)`."""
    if detach_context:  # the teacher distribution is a constant: no gradient to its encoder pass nor to the CRF
        with torch.no_grad():
            teacher = crf.log_marginals(logits_ctx, word_mask, temperature)
    else:
        teacher = crf.log_marginals(logits_ctx, word_mask, temperature)
    student = crf.log_marginals(logits_sent, word_mask, temperature)
    kl = (teacher.exp() * (teacher - student)).sum(-1) * word_mask.to(teacher.dtype)  # (B, W)
    return (kl.sum(1) * row_weight).sum() / row_weight.new_tensor(len(row_weight)).clamp_min(1)


def cl_l2_loss(hidden_ctx, hidden_sent, word_mask, row_weight, detach_context=True):
    """CL-L2: per sentence, the sum over its words of ||v_i - v~_i||^2 between the two views' word representations,
    averaged over the batch rows (weighted by `row_weight`). Shapes: hidden `(B, W, H)`, word_mask `(B, W)`."""
    target = hidden_ctx.detach() if detach_context else hidden_ctx
    sq = ((hidden_sent.float() - target.float()) ** 2).sum(-1) * word_mask.to(torch.float32)
    return (sq.sum(1) * row_weight).sum() / row_weight.new_tensor(len(row_weight)).clamp_min(1)


def seqeval_metrics(gold: list[list[str]], pred: list[list[str]], entity_level: bool = False) -> dict[str, float]:
    """Entity-level precision/recall/F1 and token accuracy with `seqeval` (the library behind `evaluate`'s seqeval
    metric, which would be fetched from the Hub), same keys as evaluate's `overall_*` without the prefix."""
    from seqeval.metrics import accuracy_score, classification_report

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    out = {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
           "f1": float(micro["f1-score"]), "accuracy": float(accuracy_score(gold, pred))}
    if entity_level:
        for name, scores in report.items():
            if name.endswith(" avg"):
                continue
            out.update({f"{name}_precision": float(scores["precision"]), f"{name}_recall": float(scores["recall"]),
                        f"{name}_f1": float(scores["f1-score"]), f"{name}_number": int(scores["support"])})
    return out


def split_views(inputs: dict[str, Any]) -> tuple[dict, dict]:
    """Model inputs of the sentence view and of the context view (the `ctx_` tensors, renamed)."""
    sent = {k: inputs[k] for k in VIEW_KEYS if k in inputs}
    ctx = {k: inputs["ctx_" + k] for k in VIEW_KEYS if "ctx_" + k in inputs}
    return sent, ctx


class CLNERTrainer(Trainer):
    """A `Trainer` whose `compute_loss` runs the sentence view and the context view and adds the CL loss.

    Args:
        cl_args: `CLArguments`; the rest as `transformers.Trainer`. `compute_metrics` defaults to seqeval on both
            views (`sentence_{precision,recall,f1,accuracy}`, `context_...`; per entity type with
            `return_entity_level_metrics=True`).
    """

    def __init__(self, *args, cl_args: Optional[CLArguments] = None, return_entity_level_metrics: bool = False,
                 **kwargs):
        self.cl_args = cl_args or CLArguments()
        self.return_entity_level_metrics = return_entity_level_metrics
        if kwargs.get("compute_metrics") is None:
            kwargs["compute_metrics"] = self.two_view_metrics
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if training_args is not None and training_args.ddp_find_unused_parameters is None:
            # every parameter gets a gradient each step (the encoder is built without its pooler); with the search
            # for unused parameters on, DDP would flag the CRF (used outside forward) as unused and then fail with
            # "Expected to mark a variable ready only once" when its gradient arrives
            training_args.ddp_find_unused_parameters = False
        super().__init__(*args, **kwargs)
        self.args.remove_unused_columns = False  # the context view and window columns are not forward() arguments
        self.model_accepts_loss_kwargs = False  # the loss is a per-batch mean: Trainer scales it for accumulation
        if self.args.label_names is None:
            self.args.label_names = ["labels"]
        self._components: dict[str, list[float]] = defaultdict(list)
        self._eval_meta: Optional[dict[str, np.ndarray]] = None

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
                optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"},
                                           "params": mine, "lr": head_lr, "initial_lr": head_lr})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """L = w_nll * L_NLL + w_ext * L_NLL-EXT + w_cl * L_CL (see `CLArguments`); each term is a batch mean."""
        args = self.cl_args
        labels = inputs.get("labels")
        sent_in, ctx_in = split_views(inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        has_ctx = inputs.get("has_context")
        if has_ctx is None or not ctx_in:
            ctx_in, has_ctx = sent_in, torch.zeros(sent_in["input_ids"].shape[0], dtype=torch.bool,
                                                   device=sent_in["input_ids"].device)
        terms: dict[str, torch.Tensor] = {}
        out_sent = out_ctx = None
        if args.train_views in ("both", "sentence"):
            out_sent = model(**sent_in)
            if labels is not None:
                terms["loss_nll"] = unwrapped.crf_loss(out_sent.logits, labels, out_sent.word_mask)
        if args.train_views in ("both", "context"):
            out_ctx = model(**ctx_in)
            if labels is not None:
                terms["loss_nll_ext"] = unwrapped.crf_loss(out_ctx.logits, labels, out_ctx.word_mask)
        if args.uses_cl:
            labelled = ((labels != -100) & out_sent.word_mask).any(1) if labels is not None else None
            weight = has_ctx.to(out_sent.logits.dtype)
            if labelled is not None and args.unlabeled_weight != 1.0:
                weight = weight * torch.where(labelled, 1.0, args.unlabeled_weight).to(weight.dtype)
            if args.cl_loss == "kl":
                terms["loss_cl"] = cl_kl_loss(unwrapped.crf, out_ctx.logits, out_sent.logits, out_sent.word_mask,
                                              weight, args.cl_temperature, args.cl_detach_context)
            else:
                terms["loss_cl"] = cl_l2_loss(out_ctx.word_hidden_states, out_sent.word_hidden_states,
                                              out_sent.word_mask, weight, args.cl_detach_context)
        weights = {"loss_nll": args.nll_weight, "loss_nll_ext": args.nll_ext_weight, "loss_cl": args.cl_weight}
        if not terms:
            raise ValueError("nothing to optimise: the batch has no labels and the CL loss is off")
        loss = sum(weights[k] * v for k, v in terms.items())
        if model.training:
            for k, v in terms.items():
                self._components[k].append(float(v.detach()))
        if return_outputs:
            return loss, {"sentence": out_sent, "context": out_ctx}
        return loss

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Add the mean of each loss component since the last training log (`loss_nll`, `loss_nll_ext`,
        `loss_cl`)."""
        if "loss" in logs and self._components:
            for k, values in self._components.items():
                logs[k] = round(sum(values) / len(values), 4)
            self._components.clear()
        super().log(logs, start_time)

    # -- evaluation -----------------------------------------------------------------------------------------------
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Loss plus Viterbi paths of both views; the window metadata rides along so that windows of long
        sentences are stitched back after the (distributed) gather."""
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
            unwrapped = self.accelerator.unwrap_model(model)
            sent_in, ctx_in = split_views(inputs)
            paths = []
            for name, view in (("sentence", sent_in), ("context", ctx_in or sent_in)):
                out = outputs.get(name) or model(**view)  # views the loss already ran are not run again
                paths.append(unwrapped.crf.viterbi_decode(out.logits, out.word_mask))
            meta = torch.stack([inputs[k] for k in META_KEYS], dim=1)  # (B, 4)
        # a tuple: the Trainer pads (with -100), concatenates and gathers each element on its own
        return loss, (paths[0], paths[1], meta), labels

    @staticmethod
    def unpack_predictions(predictions, label_ids):
        """Gathered `(sentence paths, context paths, meta)` -> per-view stitched label-id sequences, and gold."""
        sent, ctx, meta = predictions
        meta = [dict(zip(META_KEYS, m)) for m in np.asarray(meta).tolist()]
        views = {name: stitch_windows([dict(m, predictions=p) for p, m in zip(np.asarray(paths).tolist(), meta)])
                 for name, paths in (("sentence", sent), ("context", ctx))}
        gold = stitch_windows([dict(m, predictions=g) for g, m in zip(np.asarray(label_ids).tolist(), meta)])
        return views, gold

    def two_view_metrics(self, eval_pred) -> dict[str, float]:
        """seqeval metrics of both views, prefixed `sentence_` and `context_`."""
        id2label = self.accelerator.unwrap_model(self.model).config.id2label
        views, gold = self.unpack_predictions(eval_pred.predictions, eval_pred.label_ids)
        gold_names = [[id2label[int(i)] for i in row] for row in gold]
        metrics = {}
        for name, pred in views.items():
            pred_names = [[id2label[int(i)] for i in row] for row in pred]
            for k, v in seqeval_metrics(gold_names, pred_names, self.return_entity_level_metrics).items():
                metrics[f"{name}_{k}"] = v
        return metrics

