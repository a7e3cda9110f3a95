"""`clner-export-onnx MODEL OUTPUT [--quantize int8]`: export a trained CLNER model to ONNX (`clner.onnx`)."""

from __future__ import annotations

import argparse
import sys

from clner.cli import check_model_path, check_output_path, run_cli
from clner.errors import CLNERUsageError
from clner.loading import load_clner_tokenizer, read_clner_config
from clner.onnx import CRF_FILE, INT8_FILE, ONNX_FILE, ONNXCLNER, QUANTIZATIONS, export_onnx, require_onnx
from modeling_clner import CLNERForTokenClassification


def main(argv=None) -> int:
    """`clner-export-onnx MODEL OUTPUT`: export a trained CLNER model (folder or Hub id) to ONNX; a user mistake ends
    with one `error:` line and exit status 2."""

    return run_cli(export_main, argv, prog="clner-export-onnx")


def export_main(argv=None) -> int:
    """`clner-export-onnx MODEL OUTPUT`: export a trained CLNER model (folder or Hub id) to ONNX."""
    parser = argparse.ArgumentParser(prog="clner-export-onnx", description=export_main.__doc__.split(": ", 1)[1])
    parser.add_argument("model", help="trained CLNER model: a folder or a Hub id")
    parser.add_argument(
        "output", help="folder to write model.onnx, crf.json, config.json, onnx.json and the tokenizer to"
    )
    parser.add_argument("--revision", help="Hub revision of MODEL")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help=f"also write {INT8_FILE}: ONNX Runtime's dynamic int8 quantization (int8 weights per channel), a "
        "quarter of the size and, on a CPU with VNNI, about 2.5x the speed, with a few tags in a thousand words "
        f"unlike torch's; onnx.json names it, so that ONNXCLNER(OUTPUT) runs it ({ONNX_FILE} stays, and may be "
        "deleted; needs onnxruntime)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="afterwards, compare ONNX and torch tags on a few sentences (needs onnxruntime)",
    )
    args = parser.parse_args(argv)

    # every check before the model loads and before OUTPUT is created: a failed run leaves no empty folder
    check_model_path(args.model, "MODEL")
    # torch.onnx.export needs onnx; the quantization and --check, onnxruntime
    require_onnx(*(["onnx", "onnxruntime"] if args.check or args.quantize else ["onnx"]))
    check_output_path(args.output, "OUTPUT", directory=True)

    hub = {"revision": args.revision} if args.revision else {}
    try:
        tokenizer = load_clner_tokenizer(args.model, read_clner_config(args.model, "MODEL", **hub), **hub)
        model = CLNERForTokenClassification.from_pretrained(args.model, use_safetensors=True, **hub)
    except CLNERUsageError:
        raise
    except (OSError, ValueError) as exc:
        raise CLNERUsageError(f"cannot load a CLNER model from {args.model}: {' '.join(str(exc).split())}") from None
    out = export_onnx(model, tokenizer, args.output, opset=args.opset, quantize=args.quantize)
    size = (out / ONNX_FILE).stat().st_size / 2**20
    print(f"exported {args.model} to {out / ONNX_FILE} ({size:.1f} MiB) with {CRF_FILE}, config and tokenizer")
    if args.quantize:
        size = (out / INT8_FILE).stat().st_size / 2**20
        print(f"quantized it to {out / INT8_FILE} ({size:.1f} MiB, {args.quantize}), which ONNXCLNER({out}) runs")
    if args.check:
        sample = [["Justin", "Bieber", "lands", "in", "Paris", "tonight"], ["nothing", "here"]]
        want = model.predict(sample, tokenizer)
        same = ONNXCLNER(out, model_file=ONNX_FILE).predict(sample) == want
        print(f"ONNX tags {'equal' if same else 'DIFFER FROM'} torch tags on {len(sample)} sentences")
        if args.quantize:  # int8 is an approximation: its agreement is reported, not required
            got = ONNXCLNER(out).predict(sample)
            agree = sum(a == b for g, w in zip(got, want) for a, b in zip(g, w))
            words = sum(map(len, want))
            print(f"{args.quantize} ONNX tags equal torch tags on {agree} of {words} words")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
