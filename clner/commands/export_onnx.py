"""`clner-export-onnx MODEL OUTPUT`: export a trained CLNER model to ONNX (`clner.onnx`)."""

from __future__ import annotations

import argparse
import sys

from clner.cli import check_model_path, check_output_path, run_cli
from clner.errors import CLNERUsageError
from clner.loading import load_clner_tokenizer, read_clner_config
from clner.onnx import CRF_FILE, ONNX_FILE, ONNXCLNER, export_onnx, require_onnx
from modeling_clner import CLNERForTokenClassification


def main(argv=None) -> int:
    """`clner-export-onnx MODEL OUTPUT`: export a trained CLNER model (folder or Hub id) to ONNX; a user mistake ends
    with one `error:` line and exit status 2."""

    return run_cli(export_main, argv, prog="clner-export-onnx")


def export_main(argv=None) -> int:
    """`clner-export-onnx MODEL OUTPUT`: export a trained CLNER model (folder or Hub id) to ONNX."""
    parser = argparse.ArgumentParser(prog="clner-export-onnx", description=export_main.__doc__.split(": ", 1)[1])
    parser.add_argument("model", help="trained CLNER model: a folder or a Hub id")
    parser.add_argument("output", help="folder to write model.onnx, crf.json, config.json and the tokenizer to")
    parser.add_argument("--revision", help="Hub revision of MODEL")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.add_argument(
        "--check",
        action="store_true",
        help="afterwards, compare ONNX and torch tags on a few sentences (needs onnxruntime)",
    )
    args = parser.parse_args(argv)

    # every check before the model loads and before OUTPUT is created: a failed run leaves no empty folder
    check_model_path(args.model, "MODEL")
    require_onnx(*(["onnx", "onnxruntime"] if args.check else ["onnx"]))  # torch.onnx.export needs onnx
    check_output_path(args.output, "OUTPUT", directory=True)

    hub = {"revision": args.revision} if args.revision else {}
    try:
        tokenizer = load_clner_tokenizer(args.model, read_clner_config(args.model, "MODEL", **hub), **hub)
        model = CLNERForTokenClassification.from_pretrained(args.model, use_safetensors=True, **hub)
    except CLNERUsageError:
        raise
    except (OSError, ValueError) as exc:
        raise CLNERUsageError(f"cannot load a CLNER model from {args.model}: {' '.join(str(exc).split())}") from None
    out = export_onnx(model, tokenizer, args.output, opset=args.opset)
    size = (out / ONNX_FILE).stat().st_size / 2**20
    print(f"exported {args.model} to {out / ONNX_FILE} ({size:.1f} MiB) with {CRF_FILE}, config and tokenizer")
    if args.check:
        sample = [["Justin", "Bieber", "lands", "in", "Paris", "tonight"], ["nothing", "here"]]
        same = ONNXCLNER(out).predict(sample) == model.predict(sample, tokenizer)
        print(f"ONNX tags {'equal' if same else 'DIFFER FROM'} torch tags on {len(sample)} sentences")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
