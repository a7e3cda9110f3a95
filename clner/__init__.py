"""clner: CLNER (Wang et al., ACL 2021) as a Hugging Face Trainer extension."""

__version__ = "0.1.0"
