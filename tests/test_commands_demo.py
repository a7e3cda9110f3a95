"""`clner-demo`: the two views side by side, tested as a user meets them: the logic, the app over HTTP with
`gradio_client` (both views against `model.predict`), the served command with a real BM25 retriever called from
several threads, the page in headless Chromium, and the exported Space started as a Space starts it."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import BLOCK_PROJECT, REPO_ROOT, isolated_env, tiny_bert_config

pytest.importorskip("gradio")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


import pytest

from clner.commands.demo import (  # noqa: E402
    MAX_SNIPPETS,
    MAX_TEXT_CHARS,
    DemoTagger,
    build_app,
    cli,
    highlighted,
    main,
    markdown_literal,
    parse_args,
)
from clner.errors import CLNERUsageError  # noqa: E402
from conftest import error_line
from inference_clner import encode_example  # noqa: E402
from modeling_clner import CLNERConfig, CLNERForTokenClassification  # noqa: E402
from pipeline_clner import clner_pipeline  # noqa: E402

LABELS = ["O", "B-person", "I-person", "B-location", "I-location"]
TEXT = "Justin Bieber lands in Paris for the Nokia show"
SNIPPETS = ["Justin Bieber is a Canadian singer .", "Paris is the capital of France ."]
#: a corpus for live BM25 retrieval: the two snippets and unrelated lines
CORPUS = [*SNIPPETS, "Nokia is a Finnish company .", "The weather is nice today .", "Cats sleep a lot ."]
ARTIFACTS = REPO_ROOT / "outputs" / "test-artifacts"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tagged(minilm_tokenizer):
    torch.manual_seed(0)
    config = CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(LABELS)), max_seq_length=64)
    model = CLNERForTokenClassification(config).eval()
    with torch.no_grad():  # decisive random emissions: entities in both views, and views that differ
        model.classifier.weight.normal_(0, 1.0)
    return model, clner_pipeline(model, minilm_tokenizer)


def test_both_views_and_the_fallback(tagged, minilm_tokenizer):
    model, pipe = tagged
    calls = []

    def search(query, k):
        calls.append(query)
        return SNIPPETS

    demo = DemoTagger(pipe, retriever=search)
    expected_sentence = model.predict(TEXT, minilm_tokenizer)
    expected_context = model.predict(TEXT, minilm_tokenizer, contexts=SNIPPETS)
    assert expected_sentence and expected_context
    for mode, pasted in (("pasted", "\n".join(SNIPPETS) + "\n\n"), ("retrieve", "")):
        result = demo.tag(TEXT, mode, pasted)
        assert result["sentence"] == expected_sentence and result["context"] == expected_context
        assert result["context_used"] and result["snippets"] == SNIPPETS and "2 snippet(s) used" in result["note"]
    assert calls == [TEXT]
    none = demo.tag(TEXT, "none")
    assert none["context"] == none["sentence"] == expected_sentence and not none["context_used"]

    def hang(query, k):
        time.sleep(2)
        return SNIPPETS

    def fail(query, k):
        raise ConnectionError("no network")

    for retriever, why in ((hang, "timed out"), (fail, "failed"), (lambda q, k: [], "found no context")):
        result = DemoTagger(pipe, retriever=retriever, retrieval_timeout=0.2).tag(TEXT, "retrieve")
        assert result["context"] == expected_sentence and not result["context_used"] and not result["snippets"]
        assert why in result["note"] and result["note"].endswith("the context view fell back to the sentence view")
    assert "no retriever is configured" in DemoTagger(pipe).tag(TEXT, "retrieve")["note"]
    assert highlighted(TEXT, expected_sentence)["entities"][0]["start"] == expected_sentence[0]["start"]
    with pytest.raises(ValueError, match="mode must be one of"):
        demo.tag(TEXT, "web")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tagged):
    """The app on 127.0.0.1 (a free port), as `clner-demo MODEL` serves it."""
    _, pipe = tagged
    app = build_app(DemoTagger(pipe, retriever=lambda q, k: SNIPPETS), title="CLNER test")
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def test_the_app_over_http_gives_both_views_of_model_predict(served, tagged, minilm_tokenizer):
    from gradio_client import Client

    model, _ = tagged
    client = Client(served, verbose=False)
    sentence, context, snippets, raw = client.predict(TEXT, "pasted", "\n".join(SNIPPETS), api_name="/tag")
    assert raw["sentence"] == model.predict(TEXT, minilm_tokenizer)
    assert raw["context"] == model.predict(TEXT, minilm_tokenizer, contexts=SNIPPETS)
    for view, shown in (("sentence", sentence), ("context", context)):  # the page shows each entity with its score
        marked = [(t["token"], t["class_or_confidence"]) for t in shown if t["class_or_confidence"]]
        assert marked == [(e["word"], f"{e['entity_group']} {e['score']:.2f}") for e in raw[view]]
    assert SNIPPETS[0] in snippets
    *_, retrieved = client.predict(TEXT, "retrieve", "", api_name="/tag")
    assert retrieved["snippets"] == SNIPPETS and retrieved["context"] == raw["context"]


def chromium():
    """Debian's chromium and chromium-driver (`.ci/run` installs them where it can), or skip."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("headless Chromium (Debian's chromium and chromium-driver) is not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(flag)
    try:
        return webdriver.Chrome(service=Service(driver), options=options)
    except Exception as exc:  # noqa: BLE001 - a browser that cannot start here is a skip, not a failure
        pytest.skip(f"headless Chromium did not start: {exc}")


def test_the_page_in_a_headless_browser_highlights_the_entities(served, tagged, minilm_tokenizer):
    """As a user: type a sentence, press Tag, see both views' entities highlighted. The screenshot is kept in
    outputs/test-artifacts/demo.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    model, _ = tagged
    text = "Paris loves Justin Bieber and Nokia"
    expected = {e["word"] for e in model.predict(text, minilm_tokenizer, contexts=SNIPPETS)}
    assert expected
    browser = chromium()
    try:
        browser.get(served)
        wait = WebDriverWait(browser, 60)
        box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#clner-text textarea")))
        box.clear()
        box.send_keys(text)
        browser.find_element(By.CSS_SELECTOR, "#clner-tag").click()

        def context_view_done(driver):
            shown = driver.find_element(By.CSS_SELECTOR, "#clner-context").text
            return shown if all(word in shown for word in expected) and "0." in shown else False

        shown = wait.until(context_view_done)
        sentence_view = browser.find_element(By.CSS_SELECTOR, "#clner-sentence").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "demo.png"))
    finally:
        browser.quit()
    labels = {e["entity_group"] for e in model.predict(text, minilm_tokenizer, contexts=SNIPPETS)}
    assert any(label.lower() in shown.lower() for label in labels) and text.split()[0] in sentence_view
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000


def test_export_space_and_the_command(tmp_path, capsys):
    import yaml

    out = tmp_path / "space"
    assert main(["org/clner-wnut17", "--export_space", str(out), "--backend", "duckduckgo"]) == 0
    assert {p.name for p in out.iterdir()} == {"app.py", "demo_clner.py", "requirements.txt", "README.md"}
    readme = (out / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(readme.split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["models"] == ["org/clner-wnut17"]
    assert "https://huggingface.co/org/clner-wnut17" in readme
    import gradio

    requirements = (out / "requirements.txt").read_text().split()
    assert f"gradio=={gradio.__version__}" in requirements and all("==" in r for r in requirements)
    compile((out / "app.py").read_text(), "app.py", "exec")
    assert "'--trust_remote_code'" in (out / "app.py").read_text()  # the Space tags with the model's own code
    assert any(r.startswith("ddgs==") for r in requirements)  # what its live retrieval imports
    assert (out / "demo_clner.py").read_bytes() == Path(REPO_ROOT / "clner/commands/demo.py").read_bytes()
    with pytest.raises(CLNERUsageError, match="--backend bm25 needs --corpus"):
        main(["org/x", "--backend", "bm25"])
    assert "hf upload" in capsys.readouterr().out


def test_the_model_card_links_the_space():
    from clner.hub.model_card import build_model_card

    config = CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(LABELS)))
    card = build_model_card(config, {}, base_model=None, space_id="org/clner-wnut17-demo").text
    assert "## Demo" in card and "(https://huggingface.co/spaces/org/clner-wnut17-demo)" in card
    assert "## Demo" not in build_model_card(config, {}, base_model=None).text
    with pytest.raises(ValueError, match="is not a Hub Space id"):
        build_model_card(config, {}, base_model=None, space_id="not a space")


# -------------------------------------------------------------------------------------------- what a visitor sends
def test_input_past_the_limits_is_refused_with_a_message(tagged):
    _, pipe = tagged
    demo = DemoTagger(pipe, retriever=lambda q, k: SNIPPETS)
    for text, pasted, why in (
        ("word " * (MAX_TEXT_CHARS // 5 + 1), "", f"at most {MAX_TEXT_CHARS}"),
        (TEXT, "\n".join(["a snippet ."] * (MAX_SNIPPETS + 1)), f"at most {MAX_SNIPPETS}"),
        (TEXT, "x" * 5000, "per snippet"),
    ):
        result = demo.tag(text, "pasted", pasted)
        assert result["sentence"] == result["context"] == [] and not result["context_used"] and why in result["note"]
    at_limit = demo.tag("w " * (MAX_TEXT_CHARS // 2), "pasted", "\n".join(["a snippet ."] * MAX_SNIPPETS))
    assert "at most" not in at_limit["note"]


def test_only_the_snippets_in_the_view_are_reported(tagged, minilm_tokenizer):
    """1000 pasted snippets: the pipeline reports those that reached the context view, and how many did not; the
    reported ones alone give the same model input as all of them."""
    model, pipe = tagged
    snippets = [f"snippet number {i} about Paris and Justin Bieber ." for i in range(1000)]
    details = pipe(TEXT, context=snippets, return_details=True)
    shown = details["context"]
    assert details["context_used"] and 0 < len(shown) < 1000 and shown == snippets[: len(shown)]
    assert details["context_left_out"] == 1000 - len(shown)
    words = TEXT.split()
    every = encode_example(minilm_tokenizer, words, snippets, model.config.max_seq_length)
    reported = encode_example(minilm_tokenizer, words, shown, model.config.max_seq_length)
    assert [f["ctx_input_ids"] for f in reported] == [f["ctx_input_ids"] for f in every]
    fewer = encode_example(minilm_tokenizer, words, shown[:-1], model.config.max_seq_length)
    assert [f["ctx_input_ids"] for f in fewer] != [f["ctx_input_ids"] for f in every]  # the last one counts too
    demo = DemoTagger(pipe).tag(TEXT, "pasted", "\n".join(snippets[:MAX_SNIPPETS]))
    assert demo["snippets"] == shown[: len(demo["snippets"])] and "did not fit the view" in demo["note"]


def test_snippets_are_plain_text_on_the_page(tagged):
    """Snippets are third-party text: the page shows them in a plain-text box, never rendered as Markdown (an image
    link would make every visitor's browser fetch it), and the title is shown literally."""
    _, pipe = tagged
    hostile = "![t](http://127.0.0.1:9/pixel.png) [login](http://127.0.0.1:9/) <img src=x> **bold**"
    app = build_app(DemoTagger(pipe), title="[x](http://127.0.0.1:9/) <b>")
    by_id = {c.get("props", {}).get("elem_id"): c for c in app.config["components"]}
    assert by_id["clner-snippets"]["type"] == "textbox" and not by_id["clner-snippets"]["props"]["interactive"]
    markdown = [c["props"]["value"] for c in app.config["components"] if c["type"] == "markdown"]
    assert all("](" not in m and "<b>" not in m for m in markdown)
    assert markdown_literal("[a](b) ![c](d) <e>") == r"\[a\]\(b\) \!\[c\]\(d\) &lt;e&gt;"
    result = DemoTagger(pipe).tag(TEXT, "pasted", hostile)
    assert result["snippets"] == [hostile]  # shown as given, in the plain-text box


# ----------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def model_dir(tagged, minilm_tokenizer, tmp_path_factory):
    """The test model saved as `clner-train` saves one (weights, config, remote code, tokenizer)."""
    model, _ = tagged
    folder = tmp_path_factory.mktemp("demo-model") / "clner-test"
    model.save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def serving(args: list[str], *, cwd: Path, env: dict, port: int, timeout: float = 120):
    """A demo process (`args` after the Python executable) serving on `port`; yields its URL, then stops it."""
    log = cwd / f"serve-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def command_env(tmp_path: Path) -> dict:
    env = isolated_env(tmp_path)
    env.update(PYTHONPATH=str(REPO_ROOT), GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    return env


def test_served_command_retrieves_live_with_bm25_from_many_threads(model_dir, corpus, tmp_path):
    """`clner-demo MODEL --backend bm25 --corpus FILE` as a user starts it; `/tag` in "retrieved live" mode,
    sequentially and from 8 threads at once: every call reads the corpus's snippets in the context view (the
    retriever's sqlite cache serves threads, and never reports them as a corrupt cache)."""
    from gradio_client import Client

    port = free_port()
    args = ["-m", "clner.commands.demo", str(model_dir), "--backend", "bm25", "--corpus", str(corpus)]
    with serving([*args, "--port", str(port)], cwd=tmp_path, env=command_env(tmp_path), port=port) as url:
        client = Client(url, verbose=False)
        texts = ["Justin Bieber sings", "Paris is big", "Bieber visits Paris"]
        first = [client.predict(t, "retrieve", "", api_name="/tag")[-1] for t in texts]
        results: list = []
        errors: list = []

        def call(i: int) -> None:
            try:
                results.append(Client(url, verbose=False).predict(texts[i % 3], "retrieve", "", api_name="/tag")[-1])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert errors == [] and len(results) == 8
    for result in first + results:
        assert result["context_used"], result["note"]
        assert result["snippets"] and set(result["snippets"]) <= set(CORPUS), result
        assert "corrupt" not in result["note"] and "snippet(s) used" in result["note"]


def test_user_mistakes_are_one_error_line(model_dir, corpus, tmp_path, capsys):
    """A typo'd model folder, a folder that is not a model, a taken port, a missing corpus (before any re-ranker
    loads) and a Space of a local folder: one `error:` line, exit status 2."""
    (tmp_path / "out").mkdir()
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            "typo": ([str(tmp_path / "out" / "clner-wnut17x")], "no such folder"),
            "typo_relative": (["out/clner-wnut17x"], "no such folder"),
            "not_a_model": ([str(not_a_model)], "cannot load a CLNER model"),
            "port": ([str(model_dir), "--port", str(port)], f"cannot serve on 127.0.0.1:{port}"),
            "corpus": (
                [str(model_dir), "--backend", "bm25", "--corpus", "missing.txt", "--rerank_model", "x"],
                "--corpus missing.txt: no such file",
            ),
            "space_of_a_folder": ([str(model_dir), "--export_space", str(tmp_path / "space")], "Hub model id"),
            "space_not_an_id": (["not an id", "--export_space", str(tmp_path / "space")], "Hub model id"),
        }
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            for name, (argv, message) in cases.items():
                started = time.monotonic()
                with pytest.raises(SystemExit) as exit_:
                    cli(argv)
                assert exit_.value.code == 2, name
                err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
                assert len(err) == 1 and err[0].startswith("clner-demo: error:") and message in err[0], (name, err)
                assert time.monotonic() - started < 30, name  # no Hub retries
        finally:
            os.chdir(cwd)
    assert not (tmp_path / "space").exists()


def test_flags_take_kebab_case_and_the_old_backend_name():
    kebab = parse_args(["m", "--export-space", "d", "--rerank-model", "minilm", "--retrieval-timeout", "3"])
    assert (kebab.export_space, kebab.rerank_model, kebab.retrieval_timeout) == ("d", "minilm", 3.0)
    assert parse_args(["m", "--retriever", "duckduckgo"]).backend == "duckduckgo"
    with pytest.raises(SystemExit):
        parse_args(["--help"])


def test_help_names_one_backend_flag_and_the_default_reranker(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--backend" in text and "--retriever" not in text and "default: none" in text and "roberta-large" in text


# ------------------------------------------------------------------------------------------------- the Space
def space_process(space: Path, model_dir: Path, tmp_path: Path, port: int):
    """How a Space starts: `python app.py` in the Space's folder, with only that folder and the installed
    requirements on the import path (this project's modules refused), `$CLNER_DEMO_MODEL` naming the local copy
    of the model the Space would download."""
    env = isolated_env(tmp_path)
    env.update(CLNER_DEMO_MODEL=str(model_dir), GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    script = (
        BLOCK_PROJECT + "import runpy, sys\nsys.argv = ['app.py']\nrunpy.run_path('app.py', run_name='__main__')\n"
    )
    return serving(["-c", script], cwd=space, env=env, port=port)


@pytest.mark.parametrize("backend", ["none", "bm25", "duckduckgo"])
def test_an_exported_space_starts_and_tags_without_the_project(backend, model_dir, corpus, tmp_path):
    """An exported Space, started as a Space starts it: it tags with the model's own remote code; "bm25" retrieves
    from the corpus shipped in the Space, "duckduckgo" offline falls back to the sentence view and says so."""
    from gradio_client import Client

    space = tmp_path / "space"
    argv = ["org/clner-test", "--export_space", str(space), "--backend", backend]
    assert main(argv + (["--corpus", str(corpus)] if backend == "bm25" else [])) == 0
    requirements = (space / "requirements.txt").read_text().split()
    assert {"none": [], "bm25": ["bm25s"], "duckduckgo": ["ddgs"]}[backend] == [
        r.split("==")[0] for r in requirements if r.split("==")[0] not in ("gradio", "transformers", "torch")
    ]
    port = free_port()
    with space_process(space, model_dir, tmp_path, port) as url:
        client = Client(url, verbose=False)
        pasted = client.predict(TEXT, "pasted", "\n".join(SNIPPETS), api_name="/tag")[-1]
        assert pasted["context_used"] and pasted["snippets"] == SNIPPETS
        if backend != "none":
            live = client.predict("Justin Bieber sings in Paris", "retrieve", "", api_name="/tag")[-1]
            if backend == "bm25":
                assert live["context_used"] and set(live["snippets"]) <= set(CORPUS) and live["snippets"], live
            else:
                assert not live["context_used"] and "fell back to the sentence view" in live["note"], live
                assert "failed" in live["note"] or "timed out" in live["note"], live


def test_the_page_retrieves_live_and_shows_snippets_as_text(model_dir, corpus, tmp_path):
    """As a user of `clner-demo MODEL --backend bm25 --corpus FILE`: the page opens in "retrieved live" mode, Tag
    shows the retrieved snippets; pasted Markdown (an image, a link) stays text: no image or link on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium()
    port = free_port()
    args = ["-m", "clner.commands.demo", str(model_dir), "--backend", "bm25", "--corpus", str(corpus)]
    try:
        with serving([*args, "--port", str(port)], cwd=tmp_path, env=command_env(tmp_path), port=port) as url:
            browser.get(url)
            wait = WebDriverWait(browser, 60)
            box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#clner-text textarea")))
            box.clear()
            box.send_keys("Justin Bieber sings in Paris")
            browser.find_element(By.CSS_SELECTOR, "#clner-tag").click()

            def snippets_shown(driver):
                shown = driver.find_element(By.CSS_SELECTOR, "#clner-snippets textarea").get_attribute("value")
                return shown if "snippet(s) used" in (shown or "") else False

            shown = wait.until(snippets_shown)
            assert any(line in shown for line in SNIPPETS), shown
            hostile = "![t](http://127.0.0.1:9/pixel.png) [login](http://127.0.0.1:9/)"
            browser.find_element(By.CSS_SELECTOR, "#clner-mode input[value='pasted']").click()
            pasted = browser.find_element(By.CSS_SELECTOR, "#clner-pasted textarea")
            pasted.clear()
            pasted.send_keys(hostile)
            browser.find_element(By.CSS_SELECTOR, "#clner-tag").click()
            wait.until(
                lambda d: (
                    hostile in (d.find_element(By.CSS_SELECTOR, "#clner-snippets textarea").get_attribute("value"))
                )
            )
            assert browser.find_elements(By.CSS_SELECTOR, "img[src*='127.0.0.1:9'], a[href*='127.0.0.1:9']") == []
    finally:
        browser.quit()


def test_demo_user_errors_are_one_line(capsys):
    """clner-demo's own checks of its arguments leave through `run_cli`: one line, exit 2."""
    assert error_line(cli, ["org/x", "--retriever", "bm25"], capsys) == (
        "clner-demo: error: --backend bm25 needs --corpus (the file to search)"
    )
    assert error_line(cli, ["org/x", "--retrieval_timeout", "0"], capsys) == (
        "clner-demo: error: --retrieval_timeout 0.0: must be a positive number of seconds"
    )
