#!/usr/bin/env python
"""The one command: ``python run_ablation.py sweep table2`` (same CLI as ``vil-ablate``)."""

from ablations.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
