"""`clner-push FOLDER REPO_ID`: upload a model folder written by `run_ner_cl.py` or `save_for_hub`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clner.cli import kebab_aliases, run_cli
from clner.errors import CLNERUsageError
from clner.hub.upload import push_to_hub


def push_parser() -> argparse.ArgumentParser:
    """The arguments of `clner-push FOLDER REPO_ID`."""
    parser = argparse.ArgumentParser(
        prog="clner-push", description="upload a folder written by `save_for_hub` / `run_ner_cl.py`."
    )
    parser.add_argument("folder", help="the model folder (the output_dir of run_ner_cl.py)")
    parser.add_argument("repo_id", help="the model repository, e.g. org/clner-wnut17 (created when needed)")
    parser.add_argument("--revision", help="branch to upload to (created when needed; default: main)")
    parser.add_argument("--private", action="store_true", help="make a new repository private")
    parser.add_argument("--token", help="Hub token (default: the one from `hf auth login`)")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    return kebab_aliases(parser)


def main(argv=None) -> int:
    """`clner-push FOLDER REPO_ID`: upload a folder written by `save_for_hub` / `run_ner_cl.py`."""
    args = push_parser().parse_args(argv)
    if not Path(args.folder).is_dir():
        raise CLNERUsageError(f"FOLDER {args.folder}: no such folder")
    try:
        info = push_to_hub(
            args.folder,
            args.repo_id,
            revision=args.revision,
            private=args.private or None,
            token=args.token,
            create_pr=args.create_pr,
        )
    except ValueError as exc:  # an incomplete folder, a leaked token, contradictory flags
        raise CLNERUsageError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - offline, no token, no rights, network
        reason = " ".join(str(exc).split())[:300]
        raise CLNERUsageError(
            f"the upload of {args.folder} to {args.repo_id!r} failed ({type(exc).__name__}: {reason}). Log in "
            "(`hf auth login`) or pass --token, check the network, and run this command again"
        ) from None
    print(f"uploaded {args.folder} to {getattr(info, 'commit_url', None) or args.repo_id}")
    return 0


def cli(argv=None) -> int:
    """The `clner-push` command: a user mistake or a failed upload ends with one `error:` line and exit status 2."""
    return run_cli(main, argv, prog="clner-push")


if __name__ == "__main__":
    sys.exit(cli())
