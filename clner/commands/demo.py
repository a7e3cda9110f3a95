"""`clner-demo MODEL`: a live web demo of a CLNER model, both views side by side, and a Hugging Face Space of it.

    clner-demo out/clner-wnut17                                   # http://127.0.0.1:7860
    clner-demo out/clner-wnut17 --retriever bm25 --corpus wiki.txt  # live retrieval over a local corpus
    clner-demo org/clner-wnut17 --export_space space/             # app.py, requirements.txt, README.md

The page takes a sentence and, optionally, its external context: pasted snippets (one a line), snippets retrieved
live through the configured backend (BM25 over a local corpus, DuckDuckGo), or none. It shows the entities of the
sentence view (the sentence alone, as where no search engine is reachable) and of the context view (`[x ; SEP ;
x~]`) with their CRF-marginal scores, and the snippets that were used. When retrieval fails, times out or finds
nothing, the context view falls back to the sentence view and the page says so: the paper's two views, and the
fallback, made visible.

Tagging goes through the CLNER pipeline (this project's, or the model's own remote code when the project is not
installed, as on a Space), so the demo gives what `pipeline("ner", model=..., trust_remote_code=True)` and
`model.predict` give. Needs Gradio: `pip install ".[demo]"`.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    from clner.errors import CLNERUsageError
except ImportError:  # a Space: no project package; a user mistake stops the app with its message, as SystemExit does
    CLNERUsageError = SystemExit


MODES = ("none", "pasted", "retrieve")
MODE_LABELS = {"none": "none (sentence view only)", "pasted": "pasted snippets", "retrieve": "retrieved live"}
DEFAULT_EXAMPLE = "Justin Bieber lands in Paris for the Nokia show"


class DemoTagger:
    """The demo's logic, without the page: one call tags a text in both views.

    Args:
        pipe: a CLNER pipeline (`pipeline("ner", model=..., trust_remote_code=True)` or `clner_pipeline(...)`).
        retriever: what live retrieval uses: a `clner.retrieval.retriever.ContextRetriever`, a backend, or a plain
            `fn(query, k) -> list[str]`; None disables the "retrieved live" mode.
        retrieval_timeout: seconds a live search may take before the context view falls back.
    """

    def __init__(self, pipe, retriever: Any = None, retrieval_timeout: float = 10.0):
        self.pipe, self.retriever, self.retrieval_timeout = pipe, retriever, retrieval_timeout

    def tag(self, text: str, mode: str = "none", pasted: str = "") -> dict:
        """Both views of `text`: ``{"text", "sentence", "context", "context_used", "snippets", "note"}``, the two
        entity lists as the pipeline gives them (`entity_group`, `score`, `word`, `start`, `end`, `word_span`)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        text = text or ""
        sentence = self.pipe(text, return_details=True)
        result = {
            "text": text,
            "sentence": sentence["entities"],
            "context": sentence["entities"],
            "context_used": False,
            "snippets": [],
            "note": "no context asked for: both views are the sentence view",
        }
        if mode == "none" or not text.strip():
            return result
        if mode == "pasted":
            snippets = [line.strip() for line in (pasted or "").splitlines() if line.strip()]
            if not snippets:
                result["note"] = "no snippet pasted: the context view is the sentence view"
                return result
            details = self.pipe(text, context=snippets, return_details=True)
        else:
            if self.retriever is None:
                result["note"] = (
                    "no retriever is configured (clner-demo --retriever): the context view is the sentence view"
                )
                return result
            details = self.pipe(
                text,
                retrieve=True,
                retriever=self.retriever,
                retrieval_timeout=self.retrieval_timeout,
                return_details=True,
            )
        result.update(
            context=details["entities"], context_used=bool(details["context_used"]), snippets=list(details["context"])
        )
        result["note"] = (
            f"context view: {len(result['snippets'])} snippet(s) used"
            if details["context_used"]
            else f"{details['note']}; the context view fell back to the sentence view"
        )
        return result


def highlighted(text: str, entities: Sequence[dict]) -> dict:
    """`gr.HighlightedText`'s value: the text with each entity marked by its type and score."""
    return {
        "text": text,
        "entities": [
            {"entity": f"{e['entity_group']} {e['score']:.2f}", "start": e["start"], "end": e["end"]} for e in entities
        ],
    }


def snippets_markdown(result: dict) -> str:
    lines = [f"**{html.escape(result['note'])}**"]
    lines += [f"{i}. {html.escape(s)}" for i, s in enumerate(result["snippets"], 1)]
    return "\n".join(lines)


def build_app(tagger: DemoTagger, title: str = "CLNER", examples: Sequence[str] | None = None):
    """The Gradio page of `tagger`. Its API endpoint `/tag` (for `gradio_client`) returns `DemoTagger.tag`'s dict."""
    import gradio as gr

    modes = [(MODE_LABELS[m], m) for m in MODES if m != "retrieve" or tagger.retriever is not None]

    def run(text: str, mode: str, pasted: str):
        result = tagger.tag(text, mode, pasted)
        return (
            highlighted(result["text"], result["sentence"]),
            highlighted(result["text"], result["context"]),
            snippets_markdown(result),
            result,
        )

    with gr.Blocks(title=title) as app:
        gr.Markdown(
            f"# {html.escape(title)}\nNamed entities from a CLNER model (Wang et al., ACL 2021): the "
            "**sentence view** reads the text alone; the **context view** reads it with external context "
            "(`[x ; SEP ; x~]`). Scores are CRF marginals."
        )
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(
                    label="Text", value=(examples or [DEFAULT_EXAMPLE])[0], lines=2, elem_id="clner-text"
                )
                mode = gr.Radio(
                    choices=modes,
                    value="pasted" if tagger.retriever is None else "retrieve",
                    label="Context",
                    elem_id="clner-mode",
                )
                pasted = gr.Textbox(
                    label="Pasted snippets (one a line)",
                    lines=3,
                    elem_id="clner-pasted",
                    value="Justin Bieber is a Canadian singer .\nNokia is a Finnish company .",
                )
                button = gr.Button("Tag", variant="primary", elem_id="clner-tag")
            with gr.Column():
                sentence = gr.HighlightedText(
                    label="Sentence view (no search engine)", elem_id="clner-sentence", combine_adjacent=False
                )
                context = gr.HighlightedText(label="Context view", elem_id="clner-context", combine_adjacent=False)
                snippets = gr.Markdown(elem_id="clner-snippets")
                raw = gr.JSON(label="Details", visible=False)
        button.click(run, [text, mode, pasted], [sentence, context, snippets, raw], api_name="tag")
        text.submit(run, [text, mode, pasted], [sentence, context, snippets, raw], api_name=False)
    return app


# ------------------------------------------------------------------------------------------------- loading
def load_pipeline(model: str, revision: str | None = None, trust_remote_code: bool = False):
    """The CLNER pipeline of `model` (a folder or a Hub id): this project's, or with `trust_remote_code` (or
    without the project, as on a Space) the model's own remote code."""
    try:
        from pipeline_clner import clner_pipeline
    except ImportError:
        clner_pipeline = None
    if clner_pipeline is None or trust_remote_code:
        from transformers import pipeline

        return pipeline("ner", model=model, revision=revision, trust_remote_code=True)
    from transformers import AutoTokenizer

    from modeling_clner import CLNERForTokenClassification

    hub = {"revision": revision} if revision else {}
    tokenizer = AutoTokenizer.from_pretrained(model, **hub)
    return clner_pipeline(CLNERForTokenClassification.from_pretrained(model, use_safetensors=True, **hub), tokenizer)


def build_retriever(
    name: str, corpus: str | None = None, rerank_model: str | None = None, timeout: float = 10.0
) -> Any:
    """A `clner.retrieval.retriever.ContextRetriever` for `name` ("bm25" over `corpus`, "duckduckgo"), re-ranked with
    `rerank_model` when given, else in the backend's order; None for "none"."""
    if name == "none":
        return None
    from clner.retrieval import backends, bertscore
    from clner.retrieval.retriever import ContextRetriever, RetrievalConfig

    backend = backends.make_backend(name, **({"corpus": corpus} if corpus else {}))
    rerank = {"model": rerank_model, "layer": bertscore.default_layer(rerank_model)} if rerank_model else {}
    config = RetrievalConfig(rerank=bool(rerank_model), search_timeout=timeout, **rerank)
    return ContextRetriever(backend, config=config, cache_path=None)


# ------------------------------------------------------------------------------------------------- Space
def export_space(
    folder: str | os.PathLike, model_id: str, retriever: str = "duckduckgo", title: str | None = None
) -> Path:
    """Write a Hugging Face Space of the demo into `folder`: `app.py` (this demo, for `model_id`, tagging through
    the model's own remote code), `demo_clner.py` (this file), `requirements.txt` pinned to the versions this demo
    runs with, and `README.md` with the Space's `sdk: gradio` front matter, linking back to the model."""
    import gradio
    import torch
    import transformers

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__), out / "demo_clner.py")
    args = [model_id, "--trust_remote_code", "--retriever", retriever, "--host", "0.0.0.0"]
    if title:
        args += ["--title", title]
    (out / "app.py").write_text(
        '"""A Hugging Face Space: the CLNER demo of ' + model_id + ' (written by clner-demo --export_space)."""\n\n'
        "import sys\n\nfrom demo_clner import main\n\n"
        f'if __name__ == "__main__":\n    sys.exit(main({args!r}))\n',
        encoding="utf-8",
    )
    requirements = [
        f"gradio=={gradio.__version__}",
        f"transformers=={transformers.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
    ]
    if retriever == "duckduckgo":
        import importlib.metadata as md

        requirements.append(f"ddgs=={md.version('ddgs')}")
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    front = {
        "title": (title or f"CLNER {model_id.split('/')[-1]}")[:60],
        "emoji": "🔎",
        "colorFrom": "blue",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": "app.py",
        "pinned": False,
        "models": [model_id],
        "tags": ["ner", "token-classification", "clner"],
    }
    lines = ["---"] + [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in front.items()] + ["---", ""]
    lines += [
        f"# {front['title']}",
        "",
        f"A live demo of [{model_id}](https://huggingface.co/{model_id}), a CLNER "
        "model (Wang et al., ACL 2021): the sentence view and the context view of a text side by side, with "
        f"contexts pasted or retrieved live ({retriever}); when retrieval fails, the context view falls back "
        "to the sentence view and says so.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------------------------- CLI
def parse_args(argv=None) -> argparse.Namespace:
    try:
        from clner.cli import HelpFormatter
    except ImportError:  # a Space: no project package
        HelpFormatter = argparse.ArgumentDefaultsHelpFormatter

    p = argparse.ArgumentParser(prog="clner-demo", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("model", help="trained CLNER model: a folder or a Hub id")
    p.add_argument("--revision", help="Hub revision of MODEL")
    p.add_argument("--trust_remote_code", action="store_true", help="tag with the model's own remote code")
    p.add_argument(
        "--retriever",
        choices=["none", "bm25", "duckduckgo"],
        default="none",
        help="backend of the 'retrieved live' mode",
    )
    p.add_argument("--corpus", help="bm25: the corpus file (txt / JSONL / parquet)")
    p.add_argument(
        "--rerank_model",
        help="BERTScore re-ranking encoder, e.g. 'minilm' (the packaged all-MiniLM-L6-v2) "
        "(default: the backend's order)",
    )
    p.add_argument("--retrieval_timeout", type=float, default=10.0, help="seconds a live search may take")
    p.add_argument("--title", default=None, help="page title (default: the model's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=int, default=7860, help="port to serve on")
    p.add_argument(
        "--export_space",
        metavar="DIR",
        help="write a Hugging Face Space for MODEL (a Hub id) into DIR instead of serving",
    )
    args = p.parse_args(argv)
    if args.retriever == "bm25" and not args.corpus:
        raise CLNERUsageError("--retriever bm25 needs --corpus (the file to search)")
    if not args.retrieval_timeout > 0:
        raise CLNERUsageError(f"--retrieval_timeout {args.retrieval_timeout}: must be a positive number of seconds")
    return args


def main(argv=None, launch: Callable[..., Any] | None = None) -> int:
    args = parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise CLNERUsageError('clner-demo needs Gradio: pip install ".[demo]"') from None
    if args.export_space:
        out = export_space(
            args.export_space, args.model, args.retriever if args.retriever != "none" else "duckduckgo", args.title
        )
        print(
            f"wrote a Hugging Face Space for {args.model} to {out}: app.py, demo_clner.py, requirements.txt, "
            f"README.md (upload it with `huggingface-cli upload --repo-type space <user>/<space> {out}`)"
        )
        return 0
    pipe = load_pipeline(args.model, args.revision, args.trust_remote_code)
    retriever = build_retriever(args.retriever, args.corpus, args.rerank_model, args.retrieval_timeout)
    app = build_app(DemoTagger(pipe, retriever, args.retrieval_timeout), args.title or Path(args.model).name)
    (launch or app.launch)(server_name=args.host, server_port=args.port)
    return 0


def cli(argv=None) -> int:
    """The `clner-demo` command: a user mistake ends with one `error:` line and exit status 2."""
    try:
        from clner.cli import run_cli
    except ImportError:  # a Space: no project package, plain exits
        return main(argv)
    return run_cli(main, argv, prog="clner-demo")


if __name__ == "__main__":
    sys.exit(cli())
