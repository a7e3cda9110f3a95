"""Loading a trained CLNER model's config and tokenizer from a folder or a Hub id, for the commands and ONNX."""

from __future__ import annotations

from clner.errors import CLNERUsageError


def read_clner_config(model: str, flag: str, **hub) -> dict:
    """`config.json` of `model` (a folder or Hub id) as a dict, read without running any code; a model that is not
    CLNER's (a plain encoder, another task's model) is a `CLNERUsageError` naming `flag` and the model type, rather
    than a tag-scheme error about its labels that would point at the data."""
    from transformers import PreTrainedConfig

    config, _ = PreTrainedConfig.get_config_dict(model, **hub)
    model_type = config.get("model_type")
    if model_type != "clner":
        raise CLNERUsageError(
            f"{flag} {model} is not a CLNER model (config.json model_type {model_type!r}): give a "
            "model trained by clner-train (run_ner_cl.py), whose config.json has model_type "
            "'clner'; a plain encoder like this one is what training starts from "
            "(--model_name_or_path)"
        )
    return config


def load_clner_tokenizer(model: str, config: dict, **hub):
    """The tokenizer of a CLNER model (`config`: its `config.json`, from `read_clner_config`), loaded without asking
    whether to run remote code. `AutoTokenizer` alone reads the model's config, whose `auto_map` (CLNER's remote
    code, for the Hub) makes it prompt "Do you wish to run the custom code? [y/N]" and wait 15 s; given the encoder's
    own config it picks the tokenizer class from that and from `tokenizer_config.json`, and `trust_remote_code=False`
    refuses any tokenizer code of the folder's instead of asking."""
    from transformers import AutoConfig, AutoTokenizer

    encoder, extra = config.get("encoder"), {}
    if isinstance(encoder, dict) and encoder.get("model_type"):
        try:
            extra["config"] = AutoConfig.for_model(**encoder)
        except (ValueError, KeyError):  # an encoder type this transformers does not know: the tokenizer's config
            pass
    return AutoTokenizer.from_pretrained(str(model), trust_remote_code=False, **extra, **hub)
