"""Loading a CLNER model's parts by hand (`clner.loading`), as the commands do: its config.json and its tokenizer."""

import builtins
import json

from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from clner import loading
from conftest import tiny_clner


def test_the_tokenizer_loads_without_a_remote_code_prompt(tmp_path, minilm_tokenizer, monkeypatch):
    """`AutoTokenizer.from_pretrained(folder)` reads config.json's auto_map (CLNER's remote code, for the Hub) and,
    in a process that has not imported modeling_clner, asks "Do you wish to run the custom code? [y/N]", waiting
    15 s on a terminal: `load_clner_tokenizer` asks nothing (input() records any question) and gives the encoder's
    own tokenizer class."""
    path = tmp_path / "model"
    tiny_clner(decisive=True, max_seq_length=64).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    assert "auto_map" in json.loads((path / "config.json").read_text(encoding="utf-8"))
    asked = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "n")
    with monkeypatch.context() as unregistered:  # a process that has not imported modeling_clner yet
        if "clner" in getattr(CONFIG_MAPPING, "_extra_content", {}):
            unregistered.delitem(CONFIG_MAPPING._extra_content, "clner")
        tokenizer = loading.load_clner_tokenizer(path, loading.read_clner_config(str(path), "--model"))
    assert type(tokenizer) is type(minilm_tokenizer) and asked == []
