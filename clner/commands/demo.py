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
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:  # the clner package: its errors, CLI conventions and retriever (a Space runs this file without it)
    from clner.cli import check_model_path, kebab_aliases, run_cli
    from clner.errors import CLNERUsageError
    from clner.files import write_text
except ImportError:  # a Space: a user mistake stops the app with its message, as SystemExit does
    CLNERUsageError = SystemExit
    check_model_path = run_cli = None

    def write_text(path: str | os.PathLike, text: str) -> None:
        Path(path).write_text(text, encoding="utf-8")

    def kebab_aliases(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return parser


MODES = ("none", "pasted", "retrieve")
MODE_LABELS = {"none": "none (sentence view only)", "pasted": "pasted snippets", "retrieve": "retrieved live"}
DEFAULT_EXAMPLE = "Justin Bieber lands in Paris for the Nokia show"
BACKENDS = ("none", "bm25", "duckduckgo")
#: What one visitor may send: a served demo (a Space binds 0.0.0.0) is shared, and a 200,000-word text would hold
#: it for everyone. Longer input gets a message on the page instead of a result.
MAX_TEXT_CHARS = 2000
MAX_SNIPPETS = 50
MAX_SNIPPET_CHARS = 2000
#: Names of the Space's files (`export_space`): this file, and a corpus shipped for BM25.
SPACE_MODULE = "demo_clner.py"
SPACE_CORPUS = "corpus"


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
        entity lists as the pipeline gives them (`entity_group`, `score`, `word`, `start`, `end`, `word_span`) and
        `snippets` the ones that reached the context view. Input past the limits (`MAX_TEXT_CHARS`,
        `MAX_SNIPPETS`, `MAX_SNIPPET_CHARS`) is not tagged: both views are empty and the note says why."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        text = text or ""
        result = {"text": text, "sentence": [], "context": [], "context_used": False, "snippets": [], "note": ""}
        snippets = [line.strip() for line in (pasted or "").splitlines() if line.strip()] if mode == "pasted" else []
        refused = input_problem(text, snippets)
        if refused:
            result["note"] = refused
            return result
        sentence = self.pipe(text, return_details=True)
        result.update(
            sentence=sentence["entities"],
            context=sentence["entities"],
            note="no context asked for: both views are the sentence view",
        )
        if mode == "none" or not text.strip():
            return result
        if mode == "pasted":
            if not snippets:
                result["note"] = "no snippet pasted: the context view is the sentence view"
                return result
            details = self.pipe(text, context=snippets, return_details=True)
        else:
            if self.retriever is None:
                result["note"] = (
                    "no retriever is configured (clner-demo --backend): the context view is the sentence view"
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
        if details["context_used"]:
            left_out = details.get("context_left_out", 0)
            result["note"] = f"context view: {len(result['snippets'])} snippet(s) used" + (
                f"; {left_out} more did not fit the view" if left_out else ""
            )
        else:
            result["note"] = f"{details['note']}; the context view fell back to the sentence view"
        return result


def input_problem(text: str, snippets: Sequence[str]) -> str | None:
    """Why a visitor's input is refused (past `MAX_TEXT_CHARS`, `MAX_SNIPPETS` or `MAX_SNIPPET_CHARS`), or None."""
    if len(text) > MAX_TEXT_CHARS:
        return f"the text has {len(text)} characters; this demo tags at most {MAX_TEXT_CHARS}: shorten it"
    if len(snippets) > MAX_SNIPPETS:
        return f"{len(snippets)} snippets pasted; this demo takes at most {MAX_SNIPPETS}: paste fewer"
    longest = max((len(s) for s in snippets), default=0)
    if longest > MAX_SNIPPET_CHARS:
        return f"a pasted snippet has {longest} characters; this demo takes at most {MAX_SNIPPET_CHARS} per snippet"
    return None


def highlighted(text: str, entities: Sequence[dict]) -> dict:
    """`gr.HighlightedText`'s value: the text with each entity marked by its type and score."""
    return {
        "text": text,
        "entities": [
            {"entity": f"{e['entity_group']} {e['score']:.2f}", "start": e["start"], "end": e["end"]} for e in entities
        ],
    }


def snippets_text(result: dict) -> str:
    """The note and the snippets of the context view as plain text: snippets are third-party text (retrieved from
    the web, or pasted), so the page never renders them as Markdown or HTML."""
    return "\n".join([result["note"], *(f"{i}. {s}" for i, s in enumerate(result["snippets"], 1))])


def markdown_literal(text: str) -> str:
    """`text` shown literally inside Markdown: HTML escaped, and every Markdown punctuation backslash-escaped."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~" else c for c in html.escape(text, quote=False))


def build_app(tagger: DemoTagger, title: str = "CLNER", examples: Sequence[str] | None = None):
    """The Gradio page of `tagger`. Its API endpoint `/tag` (for `gradio_client`) returns `DemoTagger.tag`'s dict."""
    import gradio as gr

    modes = [(MODE_LABELS[m], m) for m in MODES if m != "retrieve" or tagger.retriever is not None]

    def run(text: str, mode: str, pasted: str):
        result = tagger.tag(text, mode, pasted)
        return (
            highlighted(result["text"], result["sentence"]),
            highlighted(result["text"], result["context"]),
            snippets_text(result),
            result,
        )

    with gr.Blocks(title=title) as app:
        gr.Markdown(
            f"# {markdown_literal(title)}\nNamed entities from a CLNER model (Wang et al., ACL 2021): the "
            "**sentence view** reads the text alone; the **context view** reads it with external context "
            f"(`[x ; SEP ; x~]`). Scores are CRF marginals. Texts up to {MAX_TEXT_CHARS} characters."
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
                snippets = gr.Textbox(label="Context", interactive=False, lines=4, elem_id="clner-snippets")
                raw = gr.JSON(label="Details", visible=False)
        button.click(run, [text, mode, pasted], [sentence, context, snippets, raw], api_name="tag")
        text.submit(run, [text, mode, pasted], [sentence, context, snippets, raw], api_name=False)
    return app


# ------------------------------------------------------------------------------------------------- loading
def load_pipeline(model: str, revision: str | None = None, trust_remote_code: bool = False):
    """The CLNER pipeline of `model` (a folder or a Hub id): this project's, or with `trust_remote_code` (or
    without the project, as on a Space) the model's own remote code. A model that cannot be loaded is a
    `CLNERUsageError` naming it."""
    try:
        from pipeline_clner import clner_pipeline
    except ImportError:
        clner_pipeline = None
    try:
        if clner_pipeline is None or trust_remote_code:
            from transformers import pipeline

            return pipeline("ner", model=model, revision=revision, trust_remote_code=True)
        from transformers import AutoTokenizer

        from modeling_clner import CLNERForTokenClassification

        hub = {"revision": revision} if revision else {}
        tokenizer = AutoTokenizer.from_pretrained(model, **hub)
        return clner_pipeline(
            CLNERForTokenClassification.from_pretrained(model, use_safetensors=True, **hub), tokenizer
        )
    except (OSError, ValueError, KeyError) as err:
        raise CLNERUsageError(
            f"MODEL {model}: cannot load a CLNER model from it ({' '.join(str(err).split())[:300]})"
        ) from None


def build_retriever(
    name: str, corpus: str | None = None, rerank_model: str | None = None, timeout: float = 10.0
) -> Any:
    """What the "retrieved live" mode searches with: `name` "bm25" (over `corpus`) or "duckduckgo"; None for
    "none". With the clner package, a `ContextRetriever` (cached, re-ranked with `rerank_model` when given); without
    it (a Space), `standalone_search`."""
    if name == "none":
        return None
    try:
        from clner.retrieval import backends, bertscore
        from clner.retrieval.retriever import ContextRetriever, RetrievalConfig
    except ImportError:
        return standalone_search(name, corpus)
    backend = backends.make_backend(name, **({"corpus": corpus} if corpus else {}))
    rerank = {"model": rerank_model, "layer": bertscore.default_layer(rerank_model)} if rerank_model else {}
    config = RetrievalConfig(rerank=bool(rerank_model), search_timeout=timeout, **rerank)
    return ContextRetriever(backend, config=config, cache_path=None)


def standalone_search(name: str, corpus: str | None = None) -> Callable[[str, int], list[str]]:
    """A search function `fn(query, k) -> list[str]` for a Space, which has this file but not the clner package:
    BM25 (`bm25s`) over the lines of `corpus` (a text file, one document a line), or DuckDuckGo (`ddgs`). The
    pipeline calls it under its retrieval timeout; a failure makes the context view fall back, and says so."""
    if name == "duckduckgo":

        def duckduckgo(query: str, k: int) -> list[str]:
            from ddgs import DDGS

            return [r.get("body") or "" for r in DDGS().text(query, max_results=k) or []]

        return duckduckgo
    import bm25s

    documents = [line.strip() for line in Path(corpus).read_text(encoding="utf-8").splitlines() if line.strip()]
    index = bm25s.BM25()
    index.index(bm25s.tokenize(documents, show_progress=False), show_progress=False)

    def bm25(query: str, k: int) -> list[str]:
        found, scores = index.retrieve(
            bm25s.tokenize([query], show_progress=False), k=min(k, len(documents)), show_progress=False
        )
        return [documents[i] for i, score in zip(found[0], scores[0]) if score > 0]

    return bm25


# ------------------------------------------------------------------------------------------------- Space
def check_space_model(model_id: str) -> None:
    """A Space links its model on the Hub: `model_id` must be a Hub id (`org/name`), not a local folder."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model_id)
        ok = "/" in model_id and not os.path.exists(model_id)
    except HFValidationError:
        ok = False
    if not ok:
        raise CLNERUsageError(
            f"--export_space needs MODEL as a Hub model id ('organisation/name'), got {model_id!r}: a Space loads "
            "its model from the Hub. Upload the model first (clner-push FOLDER REPO_ID)"
        )


def export_space(
    folder: str | os.PathLike,
    model_id: str,
    backend: str = "none",
    title: str | None = None,
    corpus: str | os.PathLike | None = None,
) -> Path:
    """Write a Hugging Face Space of the demo into `folder`: `app.py` (this demo, for `model_id`, tagging through
    the model's own remote code), `demo_clner.py` (this file), for `backend` "bm25" the corpus (`corpus.txt`),
    `requirements.txt` pinned to the versions this demo runs with (with `ddgs` or `bm25s` for live retrieval), and
    `README.md` with the Space's `sdk: gradio` front matter, linking back to the model. `app.py` serves
    `$CLNER_DEMO_MODEL` instead of `model_id` when set (a local copy of the model, for a test)."""
    import gradio
    import torch
    import transformers

    check_space_model(model_id)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / SPACE_MODULE, Path(__file__).read_text(encoding="utf-8"))
    args = ["--trust_remote_code", "--backend", backend, "--host", "0.0.0.0"]
    if backend == "bm25":
        shutil.copyfile(corpus, out / f"{SPACE_CORPUS}.txt")
        args += ["--corpus", f"{SPACE_CORPUS}.txt"]
    if title:
        args += ["--title", title]
    write_text(
        out / "app.py",
        f'"""A Hugging Face Space: the CLNER demo of {model_id} (written by clner-demo --export_space)."""\n\n'
        "import os\nimport sys\n\nfrom demo_clner import main\n\n"
        f"MODEL = {model_id!r}\nARGS = {args!r}\n\n"
        'if __name__ == "__main__":\n'
        "    os.chdir(os.path.dirname(os.path.abspath(__file__)))  # the corpus and demo_clner.py lie here\n"
        '    sys.exit(main([os.environ.get("CLNER_DEMO_MODEL", MODEL), *ARGS]))\n',
    )
    import importlib.metadata as md

    requirements = [
        f"gradio=={gradio.__version__}",
        f"transformers=={transformers.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
    ]
    requirements += {"duckduckgo": [f"ddgs=={md.version('ddgs')}"], "bm25": [f"bm25s=={md.version('bm25s')}"]}.get(
        backend, []
    )
    write_text(out / "requirements.txt", "\n".join(requirements) + "\n")
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
    retrieval = {"none": "pasted", "bm25": "pasted or retrieved live (BM25 over its corpus)"}.get(
        backend, f"pasted or retrieved live ({backend})"
    )
    lines = ["---"] + [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in front.items()] + ["---", ""]
    lines += [
        f"# {front['title']}",
        "",
        f"A live demo of [{model_id}](https://huggingface.co/{model_id}), a CLNER "
        "model (Wang et al., ACL 2021): the sentence view and the context view of a text side by side, with "
        f"contexts {retrieval}; when retrieval fails, the context view falls back to the sentence view and says so.",
        "",
    ]
    write_text(out / "README.md", "\n".join(lines))
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
    p.add_argument("--backend", choices=BACKENDS, default="none", help="search backend of the 'retrieved live' mode")
    p.add_argument("--retriever", choices=BACKENDS, dest="backend", help=argparse.SUPPRESS)  # another name of it
    p.add_argument("--corpus", help="bm25: the corpus file (txt / JSONL / parquet; a Space takes a .txt)")
    p.add_argument(
        "--rerank_model",
        help="BERTScore re-ranking encoder, e.g. 'minilm' (the packaged all-MiniLM-L6-v2) (default: none, the "
        "backend's order; clner-retrieve and clner-predict re-rank with roberta-large)",
    )
    p.add_argument("--retrieval_timeout", type=float, default=10.0, help="seconds a live search may take")
    p.add_argument("--title", default=None, help="page title (default: the model's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=int, default=None, help="port to serve on (default: $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument(
        "--export_space",
        metavar="DIR",
        help="write a Hugging Face Space for MODEL (a Hub id) into DIR instead of serving",
    )
    args = kebab_aliases(p).parse_args(argv)
    if args.backend == "bm25" and not args.corpus:
        raise CLNERUsageError("--backend bm25 needs --corpus (the file to search)")
    if args.corpus and not os.path.isfile(args.corpus):
        raise CLNERUsageError(f"--corpus {args.corpus}: no such file")
    if not args.retrieval_timeout > 0:
        raise CLNERUsageError(f"--retrieval_timeout {args.retrieval_timeout}: must be a positive number of seconds")
    return args


def check_model(model: str) -> None:
    """Refuse, before any Hub request, a MODEL that is meant as a local folder but names none: a path by its form
    (`clner.cli.check_model_path`), or a name whose first folder exists here (`out/clner-wnut17x`, a typo)."""
    if check_model_path is not None:
        check_model_path(model, "MODEL")
    first = model.split("/")[0]
    if "/" in model and os.path.isdir(first) and not os.path.exists(model):
        raise CLNERUsageError(f"MODEL {model}: no such folder (in {os.path.abspath(first)})")


def check_port(host: str, port: int | None) -> None:
    """Refuse, before the model loads, a port that is taken (or an address this machine cannot bind)."""
    port = port or int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as err:
            raise CLNERUsageError(
                f"cannot serve on {host}:{port}: {err.strerror or err} (another program uses it? pass --port)"
            ) from None


def main(argv=None, launch: Callable[..., Any] | None = None) -> int:
    args = parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise CLNERUsageError('clner-demo needs Gradio: pip install ".[demo]"') from None
    if args.export_space:
        out = export_space(args.export_space, args.model, args.backend, args.title, args.corpus)
        print(
            f"wrote a Hugging Face Space for {args.model} to {out}: "
            f"{', '.join(sorted(p.name for p in out.iterdir()))} (upload it with "
            f"`hf upload <user>/<space> {out} --repo-type space`)"
        )
        return 0
    check_model(args.model)
    if launch is None:
        check_port(args.host, args.port)
    retriever = build_retriever(args.backend, args.corpus, args.rerank_model, args.retrieval_timeout)
    pipe = load_pipeline(args.model, args.revision, args.trust_remote_code)
    app = build_app(DemoTagger(pipe, retriever, args.retrieval_timeout), args.title or Path(args.model).name)
    try:
        (launch or app.launch)(server_name=args.host, server_port=args.port)
    except OSError as err:  # the port is taken, or the address cannot be bound
        raise CLNERUsageError(f"cannot serve on {args.host}:{args.port or 7860}: {err}") from None
    return 0


def cli(argv=None) -> int:
    """The `clner-demo` command: a user mistake ends with one `error:` line and exit status 2."""
    if run_cli is None:  # a Space: no project package, plain exits
        return main(argv)
    return run_cli(main, argv, prog="clner-demo")


if __name__ == "__main__":
    sys.exit(cli())
