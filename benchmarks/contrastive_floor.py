#!/usr/bin/env python
"""Runs ``ssgraphrec bench study contrastive_floor`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("contrastive_floor", sys.argv[1:])
