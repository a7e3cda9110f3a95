"""`clner-demo`: the two views side by side, tested as a user meets them: the logic, the app over HTTP with
`gradio_client` (both views against `model.predict`), the page in headless Chromium, and the exported Space."""

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, tiny_bert_config

pytest.importorskip("gradio")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from clner.commands.demo import DemoTagger, build_app, highlighted, main  # noqa: E402
from clner.errors import CLNERUsageError  # noqa: E402
from modeling_clner import CLNERConfig, CLNERForTokenClassification  # noqa: E402
from pipeline_clner import clner_pipeline  # noqa: E402

LABELS = ["O", "B-person", "I-person", "B-location", "I-location"]
TEXT = "Justin Bieber lands in Paris for the Nokia show"
SNIPPETS = ["Justin Bieber is a Canadian singer .", "Paris is the capital of France ."]
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
    assert main(["org/clner-wnut17", "--export_space", str(out), "--retriever", "duckduckgo"]) == 0
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
    assert (out / "demo_clner.py").read_bytes() == Path(REPO_ROOT / "clner/commands/demo.py").read_bytes()
    with pytest.raises(CLNERUsageError, match="--retriever bm25 needs --corpus"):
        main(["org/x", "--retriever", "bm25"])


def test_the_model_card_links_the_space():
    from clner.hub.model_card import build_model_card

    config = CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(LABELS)))
    card = build_model_card(config, {}, base_model=None, space_id="org/clner-wnut17-demo").text
    assert "## Demo" in card and "(https://huggingface.co/spaces/org/clner-wnut17-demo)" in card
    assert "## Demo" not in build_model_card(config, {}, base_model=None).text
    with pytest.raises(ValueError, match="is not a Hub Space id"):
        build_model_card(config, {}, base_model=None, space_id="not a space")
